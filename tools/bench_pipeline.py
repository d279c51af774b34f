#!/usr/bin/env python
"""Benchmark the training input pipeline against a naive per-file `np.load` loader, in one run.

    python tools/bench_pipeline.py [--tracks 500] [--workdir /tmp/tfmood-bench] [--seconds 20]

Synthetic MTG-layout data (96-band float32 `NN/ID.npy`) whose track lengths follow the real split-0 train
durations (read from ../shared/jamendo/data when present, else a log-normal fit with the same mean), converted
with tools/convert.py. Both loaders do the same work: a random 96x960 crop per sample, SpecAugment, mixup,
batch 32. Reported per loader: steady-state crops/s, bytes read from storage per crop divided by the crop's
own bytes (read amplification), and peak RSS (each loader runs in its own process). Run with two --tracks
values to see whether memory grows with the dataset.
"""

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CROP, BANDS, BATCH = 960, 96, 32
SHARED_TRAIN = Path(__file__).resolve().parents[2] / "shared/jamendo/data/splits/split-0/autotagging_moodtheme-train.tsv"


def durations(n, rng):
    if SHARED_TRAIN.exists():
        from tfmood.metadata import read_split
        real = np.array([t.duration for t in read_split(str(SHARED_TRAIN))])
        return rng.choice(real, size=n, replace=False), "real split-0 train durations"
    return np.clip(rng.lognormal(np.log(200), 0.45, n), 30, 3931), "log-normal (no ../shared)"


def make_data(workdir: Path, n_tracks: int):
    from tfmood import metadata
    from tfmood.data import convert
    rng = np.random.default_rng(0)
    secs, source = durations(n_tracks, rng)
    tracks = []
    for i, sec in enumerate(secs, start=1):
        frames = math.ceil(sec * 12000 / 256) + 1
        t = metadata.Track(i, f"artist_{i}", f"album_{i}", f"{i % 100:02d}/{i}.mp3", float(sec), ("calm",))
        path = Path(t.feature_path(str(workdir / "features")))
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, rng.normal(-40, 10, (BANDS, frames)).astype(np.float32))
        tracks.append(t)
    convert.run({"train": tracks}, convert.Options(str(workdir / "features"), str(workdir / "records")),
                num_shards=16, workers=2)
    return tracks, source


def naive_batches(files, rng):
    """What a simple loader does: np.load the whole file, crop, augment and mix in numpy."""
    while True:
        for start in range(0, len(files) - BATCH + 1, BATCH):
            x = np.empty((BATCH, BANDS, CROP), np.float32)
            for j, f in enumerate(rng.permutation(files)[:BATCH]):
                a = np.load(f)
                a = np.tile(a, (1, -(-CROP // a.shape[1]))) if a.shape[1] < CROP else a
                o = rng.integers(0, a.shape[1] - CROP + 1)
                x[j] = a[:, o:o + CROP]
            for j in range(BATCH):
                if rng.random() < 0.7:
                    for _ in range(2):
                        w = rng.integers(0, 97); s = rng.integers(0, CROP - w + 1); x[j, :, s:s + w] = x[j].min()
                        w = rng.integers(0, 10); s = rng.integers(0, BANDS - w + 1); x[j, s:s + w] = x[j].min()
            lam = rng.beta(0.3, 0.3, BATCH)[:, None, None]
            yield lam * x + (1 - lam) * x[rng.permutation(BATCH)]


def measure(batches, seconds, warmup=10):
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        next(it)
        n += BATCH
    return n / (time.perf_counter() - t0)


def run_loader(kind, workdir, seconds):
    """Runs in a child process; prints JSON with crops/s, bytes read per crop and peak RSS."""
    workdir = Path(workdir)
    io0 = _read_bytes()
    if kind == "naive":
        files = sorted(str(p) for p in (workdir / "features").rglob("*.npy"))
        rate = measure(naive_batches(files, np.random.default_rng(0)), seconds)
    else:
        from tfmood.data import pipeline
        ds = pipeline.train_dataset(str(workdir / "records"), batch_size=BATCH, crop_frames=CROP,
                                    mixup_alpha=0.3, seed=0).repeat()
        rate = measure((x for x, _ in ds), seconds)
    crops = rate * seconds
    print(json.dumps({"loader": kind, "crops_per_s": rate,
                      "read_amplification": (_read_bytes() - io0) / (crops * BANDS * CROP * 4),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _read_bytes():
    """Bytes this process read through the read() family (page-cache hits included: the real I/O work)."""
    with open("/proc/self/io") as f:
        return int(dict(line.split(": ") for line in f.read().splitlines())["rchar"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracks", type=int, default=500)
    p.add_argument("--workdir", default="/tmp/tfmood-bench")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--child", choices=["naive", "tfmood"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    workdir = Path(args.workdir) / f"tracks-{args.tracks}"
    if args.child:
        return run_loader(args.child, workdir, args.seconds)
    _, source = make_data(workdir, args.tracks)
    results = {}
    for kind in ("naive", "tfmood"):
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--tracks", str(args.tracks),
                              "--workdir", args.workdir, "--seconds", str(args.seconds)],
                             capture_output=True, text=True, check=True).stdout
        results[kind] = json.loads(out.strip().splitlines()[-1])
    print(f"{args.tracks} tracks ({source}), crop {BANDS}x{CROP}, SpecAugment + mixup, batch {BATCH}")
    for r in results.values():
        print(f"  {r['loader']:7s} {r['crops_per_s']:8.0f} crops/s   read amplification "
              f"{r['read_amplification']:5.2f}x   peak RSS {r['peak_rss_mb']:7.0f} MB")
    print(f"  speed-up: {results['tfmood']['crops_per_s'] / results['naive']['crops_per_s']:.1f}x")


if __name__ == "__main__":
    sys.exit(main())
