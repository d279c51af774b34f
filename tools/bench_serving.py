"""REST serving throughput and latency: N concurrent clients against `python -m tfmood.serve` on 127.0.0.1.

    python tools/bench_serving.py [--model tiny|mobilenetv2] [--requests 200] [--clients 8] [--frames 960] \
        [--max-concurrent-requests N]

Exports a freshly initialised model, starts the server in a subprocess, sends `--requests` row-format predict
requests (one [96, frames] log-mel each, the JSON is built once) from `--clients` threads with keep-alive
connections, and prints requests/s and p50/p99 latency. The baseline, measured in the same run, is the
SavedModel's `serving_default` signature called in-process (no HTTP, no JSON) by the same number of threads.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tfmood  # noqa: F401  (before TensorFlow: drops its benign start-up lines, tfmood/_quiet.py)

import numpy as np


def build_model(name):
    import keras

    from tfmood import models
    from tfmood.tags import NUM_TAGS

    if name == "mobilenetv2":
        return models.build("mobilenetv2", input_shape=(96, None, 1), alpha=0.35)
    inputs = keras.Input(shape=(96, None, 1), name="mel")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(NUM_TAGS, activation="sigmoid")(x))


def run_threads(clients, requests, send):
    """Latencies (s) of `requests` calls of send() spread over `clients` threads, and the wall time."""
    latencies, lock = [], threading.Lock()
    counts = [requests // clients + (i < requests % clients) for i in range(clients)]

    def worker(count):
        state = {}
        for _ in range(count):
            start = time.perf_counter()
            send(state)
            with lock:
                latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker, args=(c,)) for c in counts]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return np.array(latencies), time.perf_counter() - start


def summary(label, latencies, wall):
    return (f"| {label} | {len(latencies) / wall:.1f} | {1000 * np.percentile(latencies, 50):.1f} | "
            f"{1000 * np.percentile(latencies, 99):.1f} |")


def start_server(base_path, max_concurrent_requests=None):
    flags = [] if max_concurrent_requests is None else ["--max-concurrent-requests", str(max_concurrent_requests)]
    process = subprocess.Popen([sys.executable, "-m", "tfmood.serve", "--model-base-path", base_path,
                                "--port", "0", "--poll-seconds", "0", *flags], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"on http://([\d.]+):(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"The server did not start: {line!r}")
    return process, match.group(1), int(match.group(2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "mobilenetv2"], default="tiny")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--frames", type=int, default=960)
    parser.add_argument("--max-concurrent-requests", type=int,
                        help="passed to the server (default: the server's own default)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from tfmood.export import export_model

    workdir = tempfile.mkdtemp(prefix="bench_serving_")
    path = export_model(build_model(args.model), "bench", workdir, warmup=False)
    mel = np.random.default_rng(0).normal(size=(1, 96, args.frames)).astype(np.float32)
    body = json.dumps({"instances": mel.astype(str).astype(float).tolist()}).encode()

    signature = tf.saved_model.load(path).signatures["serving_default"]
    tensor = tf.constant(mel)
    signature(mel=tensor)  # trace/warm
    direct, direct_wall = run_threads(args.clients, args.requests, lambda state: signature(mel=tensor))

    process, host, port = start_server(os.path.dirname(path), args.max_concurrent_requests)
    try:
        def send(state):
            if "connection" not in state:
                state["connection"] = http.client.HTTPConnection(host, port, timeout=120)
            state["connection"].request("POST", "/v1/models/bench:predict", body,
                                        {"Content-Type": "application/json"})
            response = state["connection"].getresponse()
            payload = response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {payload[:200]!r}")

        run_threads(args.clients, args.clients * 2, send)  # warm-up
        rest, rest_wall = run_threads(args.clients, args.requests, send)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"model={args.model} request=[1, 96, {args.frames}] ({len(body) / 1e6:.2f} MB JSON) "
          f"clients={args.clients} requests={args.requests} "
          f"max_concurrent_requests={args.max_concurrent_requests or 'server default'}")
    print("| path | requests/s | p50 ms | p99 ms |\n|---|---|---|---|")
    print(summary("in-process signature (baseline)", direct, direct_wall))
    print(summary("REST :predict, row format", rest, rest_wall))
    print(f"REST throughput = {(len(rest) / rest_wall) / (len(direct) / direct_wall):.2f}x the in-process baseline")


if __name__ == "__main__":
    main()
