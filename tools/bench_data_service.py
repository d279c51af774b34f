#!/usr/bin/env python
"""Benchmark the training batches made by tf.data service against the local pipeline, in one run.

    python tools/bench_data_service.py [--tracks 100] [--workdir /tmp/tfmood-bench] [--seconds 10]
                                       [--crops-per-track 1] [--workers 1 2] [--readers]

The data are tools/bench_pipeline.py's (synthetic 96-band tracks with real split-0 durations, converted).
Every loader makes the same batches: one random 96x960 crop per track per epoch (`--crops-per-track 0`: one
per 960 frames), SpecAugment, mixup, batch 32. Loaders, each in a process of its own: the local pipeline
with the frame store's `numpy_function` reader (`numpy`); the same with the pure-TF reader (`tf`, what the
service's workers run); the trainer's dataset through a dispatcher and N workers started as processes of
`python -m tfmood.data_service` on this machine (`service-N`). Reported: crops/s, crops/s per core of this
machine, and read amplification (bytes read by the loader's processes, the workers' included, over the
crops' own bytes). `--readers` first times the two readers alone. On one machine the service only adds its
overhead (the workers share these cores): what it buys is more machines' cores, N workers' worth.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This checkout's tfmood in this process too (its children get it through PYTHONPATH), not whichever one an
# editable install points at: "readers alone" times the reader being benchmarked.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]
import bench_pipeline as bench  # noqa: E402  (the data, the timing loop and the read counter)


def dataset(records, reader, crops_per_track, epochs=None):
    from tfmood.data import pipeline
    return pipeline.train_dataset(records, batch_size=bench.BATCH, crop_frames=bench.CROP,
                                  crops_per_track=crops_per_track or None, mixup_alpha=0.3, seed=0,
                                  reader=reader, epochs=epochs)


def run_loader(kind, records, seconds, crops_per_track):
    """Child: prints JSON with crops/s and read amplification."""
    procs = []
    if kind.startswith("service-"):
        from tfmood import data_service
        address, procs = start_service(int(kind.split("-")[1]))
        ds = data_service.distribute(dataset(records, "tf", crops_per_track, epochs=(0, 10_000)), address)
    else:
        ds = dataset(records, kind, crops_per_track).repeat()
    try:
        pids = [os.getpid()] + [p.pid for p in procs[1:]]
        io0 = [read_bytes(pid) for pid in pids]
        rate = bench.measure((x for x, _ in ds), seconds)
        read = sum(read_bytes(pid) - r for pid, r in zip(pids, io0))
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
    crop_bytes = bench.BANDS * bench.CROP * 4  # the records' float32
    print(json.dumps({"loader": kind, "crops_per_s": rate, "per_core": rate / bench.cores(),
                      "read_amplification": read / (rate * seconds * crop_bytes)}))


def readers_alone(records, batches=30):
    """crops/s of each reader by itself: `batches` calls of 32 random 96x960 crops, one at a time."""
    import numpy as np
    import tensorflow as tf

    from tfmood.data import framestore, tf_reader
    store = framestore.ensure(records, "train")
    windows = tf_reader.ensure(store, tf_reader.window_frames_for(bench.CROP))
    read_tf = tf.function(lambda t, s: windows.crops(t, s, bench.CROP))
    rng = np.random.default_rng(0)
    room = store.effective_frames(bench.CROP) - bench.CROP + 1
    plan = [(t, (rng.random(bench.BATCH) * room[t]).astype(np.int32))
            for t in rng.integers(len(store), size=(batches + 1, bench.BATCH)).astype(np.int32)]
    rates = {}
    for name, read in (("numpy", lambda t, s: store.crops(t, s, bench.CROP)), ("tf", read_tf)):
        read(*plan[0])  # tracing
        t0 = time.perf_counter()
        for t, s in plan[1:]:
            read(t, s)
        rates[name] = batches * bench.BATCH / (time.perf_counter() - t0)
    return rates


def start_service(workers):
    """A dispatcher and `workers` workers on 127.0.0.1, as processes; returns (address, processes)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    port = free_port()
    args = [["dispatcher", "--port", str(port), "--host", "127.0.0.1"]]
    args += [["worker", "--dispatcher", f"127.0.0.1:{port}", "--host", "127.0.0.1"] for _ in range(workers)]
    procs = [subprocess.Popen([sys.executable, "-m", "tfmood.data_service", *a], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for a in args]
    for p in procs:
        while "listening" not in (line := p.stdout.readline()) and "serving" not in line:
            if not line and p.poll() is not None:
                raise RuntimeError(f"{p.args} exited with status {p.returncode}")
    return f"grpc://127.0.0.1:{port}", procs


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_bytes(pid):
    """Bytes process `pid` read through the read() family (page-cache hits included)."""
    with open(f"/proc/{pid}/io") as f:
        return int(dict(line.split(": ") for line in f.read().splitlines())["rchar"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracks", type=int, default=100)
    p.add_argument("--workdir", default="/tmp/tfmood-bench")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--crops-per-track", type=int, default=1, help="0: one crop per 960 frames of audio")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="service runs with this many workers")
    p.add_argument("--readers", action="store_true", help="also time the two readers alone (no augmentation)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    records = str(Path(args.workdir) / f"tracks-{args.tracks}" / "records")
    if args.child:
        return run_loader(args.child, records, args.seconds, args.crops_per_track)
    from tfmood.data import framestore, tf_reader
    bench.make_data(Path(args.workdir) / f"tracks-{args.tracks}", args.tracks)
    t0 = time.perf_counter()
    tf_reader.ensure(framestore.ensure(records, "train"), tf_reader.window_frames_for(bench.CROP))
    built = time.perf_counter() - t0
    mode = f"{args.crops_per_track} crop(s) per track" if args.crops_per_track else "one crop per 960 frames"
    print(f"{bench.cores()} cores; {args.tracks} tracks; crop {bench.BANDS}x{bench.CROP}, {mode}, SpecAugment + "
          f"mixup, batch {bench.BATCH}; {args.seconds:g} s per loader; stores ready in {built:.1f} s")
    if args.readers:
        rates = readers_alone(records)
        print("  readers alone: " + ", ".join(f"{k} {v:.0f} crops/s" for k, v in rates.items()), flush=True)
    rows = []
    for kind in ["numpy", "tf", *(f"service-{n}" for n in args.workers)]:
        out = subprocess.run([sys.executable, __file__, "--child", kind, *map(str, argv or sys.argv[1:])],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        rows.append(json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1]))
        base = rows[0]["crops_per_s"]
        r = rows[-1]
        print(f"  {r['loader']:10s} {r['crops_per_s']:7.0f} crops/s ({r['crops_per_s'] / base:4.2f}x numpy, "
              f"{r['per_core']:6.0f}/core)   read amplification {r['read_amplification']:5.2f}x", flush=True)


if __name__ == "__main__":
    sys.exit(main())
