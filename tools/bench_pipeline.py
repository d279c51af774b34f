#!/usr/bin/env python
"""Benchmark the training input pipeline against a naive per-file `np.load` loader, in one run.

    python tools/bench_pipeline.py [--tracks 100 200] [--workdir /tmp/tfmood-bench] [--seconds 15] [--rounds 2]
                                   [--dtype float32 float16] [--augment-on pipeline device]
                                   [--feed 3000] [--recipes] [--components]

Synthetic MTG-layout data (96-band float32 `NN/ID.npy`) whose track lengths follow the real split-0 train
durations (read from ../shared/jamendo/data when present, else a log-normal fit with the same mean), converted
with tools/convert.py. Every loader does the same work: a random 96x960 crop per sample, SpecAugment, mixup,
batch 32. Loaders: the naive one; tfmood with one crop per track per epoch (`crops_per_track=1`, what every
recipe uses); tfmood with one crop per 960 frames of audio (the default). Reported per loader and dataset
size: steady-state crops/s and crops/s per core, bytes read per crop divided by the crop's own bytes (read
amplification), crops per CPU-second of the loader's process (what a core delivers when it is not shared: the
figure a loaded machine distorts least), and peak RSS (each loader runs in its own process; give two --tracks
values to see whether memory grows with the dataset). The loaders run in turn `--rounds` times and each keeps
its best round. `--dtype float32 float16` also converts float16 records for the tfmood loaders.
`--augment-on`: where the tfmood loaders' augmentation is applied (tfmood.data.deferred). `pipeline`: in
tf.data, counted here; `device`: the loader yields deferred batches (crops + draws) and the training step
applies them on the accelerator, so the application is not the loader's work: `--components` prints what it
costs when the accelerator is this CPU (`deferred.finish`).
`--components` prints the CPU cost per batch of each stage of the tfmood loader (read, transpose, draws, the
augmentation op by op and fused). `--recipes` also runs every recipe's own crop shape, batch and augmentation
for a few seconds and prints the cores it would take to feed `--feed` samples/s.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CROP, BANDS, BATCH = 960, 96, 32
SHARED_TRAIN = Path(__file__).resolve().parents[2] / "shared/jamendo/data/splits/split-0/autotagging_moodtheme-train.tsv"
LOADERS = {"naive": None, "tfmood-one": 1, "tfmood-many": None}  # name -> crops_per_track


def durations(n, rng):
    if SHARED_TRAIN.exists():
        from tfmood.metadata import read_split
        real = np.array([t.duration for t in read_split(str(SHARED_TRAIN))])
        return rng.choice(real, size=n, replace=False), "real split-0 train durations"
    return np.clip(rng.lognormal(np.log(200), 0.45, n), 30, 3931), "log-normal (no ../shared)"


def make_data(workdir: Path, n_tracks: int, bands: int = BANDS, dtype: str = "float32"):
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
            np.save(path, rng.normal(-40, 10, (bands, frames)).astype(np.float32))
        tracks.append(t)
    convert.run({"train": tracks}, convert.Options(str(workdir / "features"), str(workdir / records_name(dtype)),
                                                   bands=bands, kind="mel" if bands == BANDS else "wavenet",
                                                   dtype=dtype),
                num_shards=16, workers=2, show_progress=False)
    return tracks, source


def records_name(dtype: str) -> str:
    return "records" if dtype == "float32" else f"records-{dtype}"


def naive_batches(files, rng):
    """What a simple loader does: np.load the whole file, crop, augment and mix in numpy."""
    while True:
        x = np.empty((BATCH, BANDS, CROP), np.float32)
        for j, i in enumerate(rng.choice(len(files), BATCH, replace=len(files) < BATCH)):
            a = np.load(files[i])
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


def measure(batches, seconds, batch=BATCH, warmup=10, with_cpu=False):
    """Steady-state crops/s; with `with_cpu`, also crops per CPU-second of this process (all its threads):
    what a core delivers when it is not shared, the figure that survives a loaded machine best."""
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    n, t0, c0 = 0, time.perf_counter(), _cpu_seconds()
    while time.perf_counter() - t0 < seconds:
        next(it)
        n += batch
    rate = n / (time.perf_counter() - t0)
    return (rate, n / (_cpu_seconds() - c0)) if with_cpu else rate


def _cpu_seconds():
    t = os.times()
    return t.user + t.system


def cores() -> int:
    return len(os.sched_getaffinity(0))


def run_loader(kind, workdir, seconds, dtype="float32", augment_on="pipeline"):
    """Runs in a child process; prints JSON with crops/s, crops per CPU-second, bytes read per crop and
    peak RSS."""
    workdir = Path(workdir)
    io0 = _read_bytes()
    if kind == "naive":
        files = sorted(str(p) for p in (workdir / "features").rglob("*.npy"))
        rate, per_cpu = measure(naive_batches(files, np.random.default_rng(0)), seconds, with_cpu=True)
    else:
        from tfmood.data import pipeline
        ds = pipeline.train_dataset(str(workdir / records_name(dtype)), batch_size=BATCH, crop_frames=CROP,
                                    crops_per_track=LOADERS[kind], mixup_alpha=0.3, seed=0,
                                    augment_on=augment_on).repeat()
        io0 = _read_bytes()  # the store is built by the parent: opening it is not the loader's work
        rate, per_cpu = measure((x for x, _ in ds), seconds, with_cpu=True)
    crops = rate * seconds
    itemsize = np.dtype("float32" if kind == "naive" else dtype).itemsize
    print(json.dumps({"loader": kind, "crops_per_s": rate, "per_core": rate / cores(), "per_cpu_s": per_cpu,
                      # over the crop's own bytes as its loader stores it (the naive loader: float32)
                      "read_amplification": (_read_bytes() - io0) / (crops * BANDS * CROP * itemsize),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_recipes(workdir, seconds, feed, modes=("pipeline",)):
    """Child: every recipe's crop shape, batch and augmentation, for `seconds` each, in each of `modes`
    (`augment_on`); prints JSON lines."""
    from tfmood import recipes
    from tfmood.data import pipeline
    from tfmood.training import losses
    for name, mode in ((n, m) for n in recipes.names() for m in modes):
        cfg = recipes.get(name)
        bands = 16 if "wavenet" in str(cfg.data) else BANDS
        records = Path(workdir) / f"bands-{bands}" / "records"
        ds = pipeline.train_dataset(str(records), batch_size=cfg.batch_size, crop_frames=cfg.crop_frames,
                                    crops_per_track=cfg.crops_per_track, spec_augment=cfg.spec_augment,
                                    mixup_alpha=cfg.mixup_alpha if cfg.mixup_mode == "targets" else 0.0,
                                    label_balancing=cfg.label_balancing, seed=0,
                                    crop_transforms=cfg.crop_transforms, augment_on=mode)
        if cfg.mixup_mode == "losses":  # CP-JKU: as the trainer chains it
            ds = losses.mixed_loss_batches(ds, cfg.mixup_alpha, 0)
        ds = ds.repeat()
        rate = measure((x for x, _ in ds), seconds, cfg.batch_size, warmup=3)
        print(json.dumps({"recipe": name, "augment_on": mode, "shape": f"{bands}x{cfg.crop_frames}",
                          "batch": cfg.batch_size,
                          "crops_per_s": rate, "per_core": rate / cores(),
                          "cores_for_feed": feed / (rate / cores())}), flush=True)


def run_components(workdir, seconds):
    """Child: CPU milliseconds per 32 x 96 x 960 batch of each stage of the tfmood loader, one at a time (all
    threads of this process counted, best of 5 repeats): what each costs a core, whatever the load."""
    import tensorflow as tf
    from tfmood.data import augment, deferred, framestore
    store = framestore.ensure(str(Path(workdir) / "records"), "train")
    rng = np.random.default_rng(0)
    tracks = rng.integers(0, len(store), BATCH)
    starts = (rng.random(BATCH) * np.maximum(1, store.effective_frames(CROP)[tracks] - CROP + 1)).astype(int)
    time_major = tf.constant(store.crops(tracks, starts, CROP))
    x = tf.transpose(time_major, [0, 2, 1])
    seed = tf.constant([1, 2], tf.int64)
    draws = tf.function(lambda s: (augment.spec_augment_masks(BATCH, BANDS, CROP, seed=s),
                                   augment.mixup_draws(BATCH, 0.3, s)))
    masks, mix = draws(seed)
    unfused = tf.function(augment.apply_batch)
    deferred_batch = deferred.pack(time_major, {"masks": masks}, mix[0], tf.gather(time_major, mix[1]),
                                   deferred.gather_rows({"masks": masks}, mix[1]))
    finish = tf.function(deferred.finish)
    stages = {
        "read (FrameStore.crops, numpy)": lambda: store.crops(tracks, starts, CROP),
        "transpose to [batch, bands, frames]": lambda: tf.transpose(time_major, [0, 2, 1]).numpy(),
        "draws (SpecAugment masks, mixup lambda + partners)": lambda: draws(seed),
        "SpecAugment + mixup applied, op by op": lambda: unfused(x, masks, mix).numpy(),
        "SpecAugment + mixup applied, fused (XLA)": lambda: augment.fused_apply(x, masks, mix).numpy(),
        "device mode: partners' crops and draws (a gather)": lambda: tf.gather(time_major, mix[1]).numpy(),
        "device mode: the step's finish (transpose + apply), here": lambda: finish(deferred_batch).numpy(),
    }
    for name, fn in stages.items():
        fn()
        best = float("inf")
        for _ in range(5):
            n, c0, t0 = 0, _cpu_seconds(), time.perf_counter()
            while time.perf_counter() - t0 < seconds / 25:
                fn()
                n += 1
            best = min(best, (_cpu_seconds() - c0) / n)
        print(json.dumps({"stage": name, "cpu_ms_per_batch": best * 1e3}), flush=True)


def _read_bytes():
    """Bytes this process read through the read() family (page-cache hits included: the real I/O work)."""
    with open("/proc/self/io") as f:
        return int(dict(line.split(": ") for line in f.read().splitlines())["rchar"])


def _child(*args):
    out = subprocess.run([sys.executable, __file__, *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def run_loaders(args, n, loaders):
    """Build `n` tracks' data, run every loader `args.rounds` times in turn and print each one's best round
    against the naive loader's."""
    from tfmood.data import framestore
    workdir = Path(args.workdir) / f"tracks-{n}"
    built = {}
    for dtype in args.dtype:
        _, source = make_data(workdir, n, dtype=dtype)
        t0 = time.perf_counter()
        framestore.ensure(str(workdir / records_name(dtype)), "train")
        built[dtype] = time.perf_counter() - t0
    results = {}
    for _ in range(args.rounds):
        for kind, dtype, mode in loaders:
            r = _child("--child", kind, "--tracks", n, "--workdir", args.workdir, "--seconds", args.seconds,
                       "--dtype", dtype, "--augment-on", mode)[0]
            best = results.get((kind, dtype, mode))
            results[(kind, dtype, mode)] = r if best is None or r["crops_per_s"] > best["crops_per_s"] else best
    if not results:  # --rounds 0: only --components / --recipes
        return
    print(f"{n} tracks ({source}); frame store ready in "
          + ", ".join(f"{t:.1f} s ({d})" for d, t in built.items()) + " (built once per records folder); "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    base = results[("naive", "float32", "pipeline")]
    for (kind, dtype, mode), r in results.items():
        mode = "" if kind == "naive" else f"aug: {mode}"
        print(f"  {kind:12s} {dtype:8s} {mode:14s} {r['crops_per_s']:7.0f} crops/s ({r['crops_per_s'] / base['crops_per_s']:4.1f}x "
              f"naive, {r['per_core']:6.0f}/core)  {r['per_cpu_s']:6.0f} crops/CPU-s "
              f"({r['per_cpu_s'] / base['per_cpu_s']:4.1f}x)  read ampl. {r['read_amplification']:5.2f}x  "
              f"peak RSS {r['peak_rss_mb']:5.0f} MB")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracks", type=int, nargs="+", default=[100, 200])
    p.add_argument("--workdir", default="/tmp/tfmood-bench")
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--rounds", type=int, default=2,
                   help="run the loaders in turn this many times and keep each one's best (a shared machine's "
                        "load drifts between processes; 0: none, for --components or --recipes alone)")
    p.add_argument("--dtype", nargs="+", default=["float32"], choices=["float32", "float16"],
                   help="storage dtype(s) of the records the tfmood loaders read (the naive loader reads the "
                        "float32 .npy files)")
    p.add_argument("--augment-on", nargs="+", default=["pipeline", "device"], choices=["pipeline", "device"],
                   help="where the tfmood loaders' augmentation is applied (device: in the training step, not "
                        "counted as the loader's work)")
    p.add_argument("--feed", type=float, default=3000, help="training rate (samples/s) to size the CPU for")
    p.add_argument("--recipes", action="store_true", help="also time every recipe's crop shape (a few s each)")
    p.add_argument("--components", action="store_true",
                   help="also print the CPU cost per batch of each stage of the tfmood loader")
    p.add_argument("--child", choices=[*LOADERS, "recipes", "components"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child == "recipes":
        return run_recipes(args.workdir, args.seconds, args.feed, args.augment_on)
    if args.child == "components":
        return run_components(Path(args.workdir) / f"tracks-{args.tracks[0]}", args.seconds)
    if args.child:
        return run_loader(args.child, Path(args.workdir) / f"tracks-{args.tracks[0]}", args.seconds, args.dtype[0],
                          args.augment_on[0])
    from tfmood.data import framestore
    print(f"{cores()} cores; crop {BANDS}x{CROP}, SpecAugment + mixup, batch {BATCH}; {args.seconds:g} s per "
          f"loader, best of {args.rounds} rounds; load average {os.getloadavg()[0]:.1f} at the start")
    loaders = [("naive", "float32", "pipeline")] + [(k, d, m) for m in args.augment_on for d in args.dtype
                                                     for k in LOADERS if k != "naive"]
    for n in args.tracks:
        run_loaders(args, n, loaders)
    if args.components:
        rows = _child("--child", "components", "--tracks", args.tracks[0], "--workdir", args.workdir,
                      "--seconds", args.seconds)
        print(f"Stages of the tfmood loader, CPU ms per {BATCH}x{BANDS}x{CROP} batch (best of 5; all threads):")
        for r in rows:
            print(f"  {r['stage']:52s} {r['cpu_ms_per_batch']:6.2f}")
    if args.recipes:
        for bands in (BANDS, 16):
            workdir = Path(args.workdir) / f"bands-{bands}"
            make_data(workdir, 60, bands)
            framestore.ensure(str(workdir / "records"), "train")
        rows = _child("--child", "recipes", "--workdir", args.workdir, "--seconds", max(2.0, args.seconds / 4),
                      "--feed", args.feed, "--augment-on", *args.augment_on)
        print(f"Recipes (their crop shape, batch, SpecAugment/mixup/transforms; 60 tracks): cores to feed "
              f"{args.feed:g} samples/s at the measured crops/s per core")
        for r in rows:
            print(f"  {r['recipe']:32s} aug: {r['augment_on']:8s} {r['shape']:>8s} batch {r['batch']:3d}  {r['crops_per_s']:7.0f} crops/s  "
                  f"{r['per_core']:6.0f}/core  -> {r['cores_for_feed']:5.1f} cores")


if __name__ == "__main__":
    sys.exit(main())
