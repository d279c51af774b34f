"""Run training preprocessing on other machines' CPUs with tf.data service (a dispatcher and workers).

Usage:
    python -m tfmood.data_service dispatcher --port 5050
    python -m tfmood.data_service worker --dispatcher HOST:5050 --port 5051      # on each CPU machine
    python -m tfmood.train --model efficientnet_b0 --data /shared/records --data-service grpc://HOST:5050

Workers build the training batches (crops, recipe transforms, SpecAugment, mixup) from the dataset graph
the trainer sends them: the frame store (`RECORDS/framestore/train/`, built by the trainer on its first run)
must be readable by every worker at the same absolute path (a shared filesystem). SIGTERM or Ctrl-C stops
a server; a stopped dispatcher ends the jobs of its trainers. docs/training.md, "Preprocessing on other
machines", says when this helps.
"""

import argparse
import signal
import socket
import sys
import threading
import time

GRPC = "grpc://"
# How the dispatcher hands the training dataset to the workers: the source (epoch, chunk of batches; see
# `pipeline.train_dataset(epochs=...)`) is split between the workers as they ask for work, so each batch of
# each epoch is made once, by whichever worker is free. "parallel_epochs" would have every worker make the
# whole run (two workers: every crop twice per epoch). The price: a worker lost mid-run loses the batches it
# was making (the run continues with fewer), as tf.data service documents for dynamic sharding.
PROCESSING_MODE = "distributed_epoch"


def address(service: str) -> str:
    """`host:port` from `grpc://host:port` or `host:port`; ValueError naming the expected form."""
    rest = service[len(GRPC):] if service.startswith(GRPC) else service
    host, _, port = rest.rpartition(":")
    if "://" in rest or not host or not port.isdigit():
        raise ValueError(f"tf.data service address must be grpc://HOST:PORT (the dispatcher's). Received: {service!r}")
    return rest


def reachable(hostport: str, timeout_s: float = 5.0) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def distribute(dataset, service: str, job_name: str = None):
    """`dataset` made by the workers of the dispatcher at `service` (see PROCESSING_MODE).

    `dataset` must be built for the service: `pipeline.train_dataset(..., reader="tf", epochs=(first, last))`
    (no Python in its graph; all its epochs in one iteration, so the trainer reads it with `steps_per_epoch`).
    Several trainers (TF_CONFIG) each give their own share of every global batch (`pipeline.worker_datasets`)
    and get a job of their own (`job_name` None). Each job hands out its batches in the order its workers
    finish them, so with several workers one step's shares generally come from different global batches:
    each trainer still trains on each of its rows once, but a step is not the one-process run's, even with
    `--deterministic` (tests/test_data_service.py checks the shares as multisets).
    """
    import tensorflow as tf

    hostport = address(service)
    if not reachable(hostport):
        raise ValueError(f"No tf.data service dispatcher answers at {service} (--data-service): start one with "
                         "`python -m tfmood.data_service dispatcher --port PORT` and at least one worker.")
    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode=PROCESSING_MODE, service=GRPC + hostport, job_name=job_name))


def _port_free(port: int) -> bool:
    # gRPC binds with SO_REUSEPORT, so a second server on a busy port would start and share it silently.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
            return True
        except OSError:
            return False


def _serve(server, what: str) -> int:
    """Block until SIGTERM or SIGINT, then stop `server` and return 0."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):  # a Python wait: signals are handled (server.join() would block them)
        pass
    server.stop()
    print(f"{what} stopped.", flush=True)
    return 0


def run_dispatcher(args) -> int:
    if not _port_free(args.port):
        raise SystemExit(f"error: port {args.port} is in use: choose another --port for the dispatcher.")
    from tensorflow.data.experimental import service
    server = service.DispatchServer(service.DispatcherConfig(port=args.port, work_dir=args.work_dir,
                                                             fault_tolerant_mode=bool(args.work_dir)))
    print(f"tf.data service dispatcher listening on {GRPC}{args.host}:{args.port}", flush=True)
    return _serve(server, "dispatcher")


def run_worker(args) -> int:
    dispatcher = address(args.dispatcher)
    deadline = time.monotonic() + args.wait_s
    while not reachable(dispatcher):  # TF's worker would retry silently forever
        if time.monotonic() > deadline:
            raise SystemExit(f"error: no dispatcher answers at {args.dispatcher} after {args.wait_s:.0f} s: start "
                             "`python -m tfmood.data_service dispatcher --port PORT` first, or fix --dispatcher.")
        time.sleep(0.5)
    port = args.port or _free_port()
    if not _port_free(port):
        raise SystemExit(f"error: port {port} is in use: choose another --port for the worker.")
    from tensorflow.data.experimental import service  # after the checks: they answer at once

    server = service.WorkerServer(service.WorkerConfig(dispatcher_address=dispatcher, port=port,
                                                       worker_address=f"{args.host}:{port}"))
    print(f"tf.data service worker {args.host}:{port} serving dispatcher {GRPC}{dispatcher}", flush=True)
    return _serve(server, "worker")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tfmood.data_service", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="role", required=True)
    d = sub.add_parser("dispatcher", help="the one dispatcher trainers and workers connect to")
    d.add_argument("--port", type=int, required=True)
    d.add_argument("--host", default=socket.gethostname(),
                   help="this machine's name as the others reach it (printed only; default: the host name)")
    d.add_argument("--work-dir", help="folder for the dispatcher's journal: a restarted dispatcher resumes its jobs")
    w = sub.add_parser("worker", help="a process that makes batches for the dispatcher's jobs")
    w.add_argument("--dispatcher", required=True, help="the dispatcher's grpc://HOST:PORT")
    w.add_argument("--port", type=int, default=0, help="this worker's port (default: a free one)")
    w.add_argument("--host", default=socket.gethostname(),
                   help="this machine's name as the trainers reach it (default: the host name)")
    w.add_argument("--wait-s", type=float, default=60.0, help="how long to wait for the dispatcher (default 60)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_dispatcher(args) if args.role == "dispatcher" else run_worker(args)


if __name__ == "__main__":
    sys.exit(main())
