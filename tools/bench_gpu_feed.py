#!/usr/bin/env python
"""The real training step rate on an accelerator, fed by the real input pipeline, and its input-wait share.

On the GPU machine (one H200, 16 cores), from the repository root; expected ~4-6 minutes, not yet run on a
GPU (records built on the bare machine, ~40 s on 2 cores; the loader alone, `--seconds` per mode; then per
model and mode a build, a warm-up fit that XLA-compiles the step, and ~2 x `--seconds` of timed fits). Give it
a timeout that leaves room for a rerun; `--models efficientnet_b0` halves it:

    PYTHONPATH=. python tools/bench_gpu_feed.py --out $OUT/bench_gpu_feed.json

Smoke check on a CPU (cp_resnet alone, 96x128 crops, ~2 minutes on 2 cores; its figures mean nothing for a GPU):

    PYTHONPATH=. python tools/bench_gpu_feed.py --quick

Per model (`--models`, default efficientnet_b0 and cp_resnet) and `--augment-on` mode (`pipeline`: tf.data
applies SpecAugment + mixup on the CPU; `device`: the training step does, `tfmood.data.deferred`), the model is
built, compiled and fed as `tfmood.training.trainer.train` does it (TrainConfig with mixed precision and XLA
on unless `--no-mixed-precision` / `--no-xla`, `configure_precision`, `training_data`, `build_and_compile`,
the prior bias, `finish_in_step`), on synthetic records made once by tools/bench_pipeline.py's `make_data`
(96 bands, lengths from the split-0 train durations or a log-normal fit; one crop per 960 frames of audio,
SpecAugment, mixup 0.3). After a warm-up fit (tracing + XLA compilation, reported, not timed), it times
`model.fit(ds, epochs=1, steps_per_epoch=N)` (N: about `--seconds` worth of steps) on

- `fed`: the training dataset, repeated: the rate training gets;
- `step`: one batch of that same dataset, cached and repeated (same element spec, so the same compiled step):
  the step's own rate, with an input that costs nothing but its copy to the device.

Reported: both rates (steps/s, samples/s), input-wait share = 1 - fed / step (the share of the fed run's
time spent waiting for input; near 0 means the pipeline keeps up, and noise can make it slightly negative),
the loader alone (the dataset iterated without training: crops/s and crops per CPU-second), and the machine
(cores, GPU name, TF version, date, load average). Writes `--out` (JSON) and prints a markdown table for
BENCHMARKS.md.
"""

import argparse
import datetime
import json
import math
import os
import sys
import time
from pathlib import Path

import tfmood  # noqa: F401  (before TensorFlow: drops its benign start-up lines, tfmood/_quiet.py)

from bench_pipeline import cores, make_data, measure, records_name  # tools/ is this script's sys.path[0]

MODELS = ("efficientnet_b0", "cp_resnet")
# 200 tracks (~2,200 crops an epoch): make_data converts with 2 workers, ~0.2 s a track; the rates do not
# depend on the dataset's size once it is in the page cache.
FULL = dict(models=",".join(MODELS), tracks=200, crop=960, batch=32, seconds=8.0, warmup=5)
# A CPU smoke run of every code path: short crops, few tracks, a few steps, and cp_resnet alone (XLA takes
# ~150 s to compile efficientnet_b0's step on a 2-core CPU, ~25 s for cp_resnet's).
QUICK = dict(models="cp_resnet", tracks=60, crop=128, batch=16, seconds=3.0, warmup=3)


def train_config(args, model, mode, records):
    from tfmood.training.config import TrainConfig
    return TrainConfig(model=model, data=records, batch_size=args.batch, crop_frames=args.crop,
                       spec_augment=True, mixup_alpha=0.3, augment_on=mode, mixed_precision=args.mixed_precision,
                       xla=args.xla, export=False).validate()


def build(cfg):
    """`(model, training dataset)` in `trainer.train`'s order (no callbacks: they are not the step's work)."""
    import keras
    from tfmood.data.convert import read_manifest
    from tfmood.training import init, strategy, trainer
    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)
    scope = strategy.get_strategy()
    strategy.configure_precision(cfg.mixed_precision)
    train_ds, _ = trainer.training_data(cfg, cfg.data)
    manifest = read_manifest(cfg.data)
    with scope.scope():
        model = trainer.build_and_compile(cfg, manifest["bands"], cfg.data)
        stats = manifest["splits"]["train"]
        init.set_prior_bias(model, list(stats["tag_counts"].values()), stats["tracks"])
    trainer.finish_in_step(model, cfg, train_ds.element_spec)
    return model, strategy.prepare_fit(model, train_ds)


def fit_seconds(model, ds, steps) -> float:
    """Wall seconds of one `fit` of `steps` steps (it returns once the last step's logs are read back)."""
    start = time.perf_counter()
    history = model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    loss = history.history["loss"][-1]
    if not math.isfinite(loss):
        raise FloatingPointError(f"non-finite training loss {loss}")
    return seconds


def bench_step(args, model_name, mode, records) -> dict:
    import tensorflow as tf
    cfg = train_config(args, model_name, mode, records)
    start = time.perf_counter()
    model, train_ds = build(cfg)
    build_s = time.perf_counter() - start
    fed = train_ds.repeat()
    # The same element spec as `fed`: fit's compiled step is reused, not traced again.
    free = train_ds.take(1).cache().repeat().prefetch(tf.data.AUTOTUNE)
    first_fit_s = fit_seconds(model, fed, args.warmup)  # tracing + XLA compilation
    free_warmup_s = fit_seconds(model, free, args.warmup)  # long only if fit traced its step again
    steps = max(args.warmup, round(args.warmup / fit_seconds(model, free, args.warmup) * args.seconds))
    step_rate, fed_rate = steps / fit_seconds(model, free, steps), steps / fit_seconds(model, fed, steps)
    return dict(model=model_name, augment_on=mode, params=model.count_params(), build_s=build_s,
                first_fit_s=first_fit_s, free_warmup_s=free_warmup_s, steps=steps, step_steps_per_s=step_rate, fed_steps_per_s=fed_rate,
                step_samples_per_s=step_rate * args.batch, fed_samples_per_s=fed_rate * args.batch,
                input_wait_share=1 - fed_rate / step_rate, gpu_peak_mib=gpu_peak_mib())


def bench_loader(args, mode, records) -> dict:
    """The training dataset alone (no model): crops/s, crops per CPU-second, seconds to the first batch."""
    cfg = train_config(args, MODELS[0], mode, records)
    from tfmood.training import trainer
    ds, _ = trainer.training_data(cfg, records)
    start = time.perf_counter()
    next(iter(ds))
    first_batch_s = time.perf_counter() - start
    rate, per_cpu = measure((x for x, _ in ds.repeat()), args.seconds, args.batch, warmup=3, with_cpu=True)
    return dict(augment_on=mode, crops_per_s=rate, crops_per_cpu_s=per_cpu, first_batch_s=first_batch_s)


def gpu_peak_mib():
    import tensorflow as tf
    if not tf.config.list_physical_devices("GPU"):
        return None
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    tf.config.experimental.reset_memory_stats("GPU:0")
    return peak


def machine() -> dict:
    import keras
    import tensorflow as tf
    gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "?")
    return dict(cores=cores(), cpu=cpu, gpus=gpus, tensorflow=tf.__version__, keras=keras.__version__,
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                load_average_start=os.getloadavg()[0])


def print_tables(result):
    m, s = result["machine"], result["settings"]
    loaders = {r["augment_on"]: r for r in result["loader"]}
    print(f"\n{'model':16s} {'aug on':8s} {'compile s':>9s} {'step samples/s':>14s} {'fed samples/s':>13s} "
          f"{'fed steps/s':>11s} {'input wait':>10s} {'loader crops/s':>14s}")
    for r in result["rows"]:
        print(f"{r['model']:16s} {r['augment_on']:8s} {r['first_fit_s']:9.1f} {r['step_samples_per_s']:14.0f} "
              f"{r['fed_samples_per_s']:13.0f} {r['fed_steps_per_s']:11.1f} {r['input_wait_share']:10.1%} "
              f"{loaders[r['augment_on']]['crops_per_s']:14.0f}")
    print(f"\nFor BENCHMARKS.md:\n\n`{result['command']}` — {m['gpus'][0] if m['gpus'] else 'no GPU'}, "
          f"{m['cores']} cores ({m['cpu']}), TensorFlow {m['tensorflow']}, Keras {m['keras']}; {m['date']}, load "
          f"average {m['load_average_start']:.1f} at the start, {result['load_average_end']:.1f} at the end. "
          f"Batch {s['batch']} of {s['bands']}x{s['crop']} ({s['dtype']} records, {s['tracks']} synthetic tracks), "
          f"SpecAugment + mixup 0.3, mixed precision {'on' if s['mixed_precision'] else 'off'}, XLA "
          f"{'on' if s['xla'] else 'off'}; `fit` timed over ~{s['seconds']:g} s per row after a warm-up fit.\n")
    print("| model | augment on | step alone: samples/s | fed by the pipeline: samples/s (steps/s) | input wait "
          "| loader alone: crops/s (per CPU-s) | warm-up fit s (compile) |\n|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        lo = loaders[r["augment_on"]]
        print(f"| `{r['model']}` | {r['augment_on']} | {r['step_samples_per_s']:,.0f} | "
              f"{r['fed_samples_per_s']:,.0f} ({r['fed_steps_per_s']:.1f}) | {r['input_wait_share']:.0%} | "
              f"{lo['crops_per_s']:,.0f} ({lo['crops_per_cpu_s']:,.0f}) | {r['first_fit_s']:.1f} |")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", help=f"comma-separated (default {FULL['models']}; --quick {QUICK['models']})")
    p.add_argument("--augment-on", nargs="+", default=["pipeline", "device"], choices=["pipeline", "device"])
    p.add_argument("--tracks", type=int, help=f"synthetic tracks (default {FULL['tracks']}; --quick {QUICK['tracks']})")
    p.add_argument("--crop", type=int, help=f"crop frames (default {FULL['crop']}; --quick {QUICK['crop']})")
    p.add_argument("--batch", type=int, help=f"batch size (default {FULL['batch']}; --quick {QUICK['batch']})")
    p.add_argument("--seconds", type=float, help=f"per timed fit and for the loader (default {FULL['seconds']:g})")
    p.add_argument("--warmup", type=int, help=f"steps of the warm-up fits (default {FULL['warmup']})")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="records' storage dtype")
    p.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--quick", action="store_true", help="tiny settings: a CPU check that the script works")
    p.add_argument("--workdir", default="/tmp/tfmood-gpu-feed", help="synthetic data (reused when present)")
    p.add_argument("--out", default="/tmp/bench_gpu_feed.json")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        setattr(args, key, value if getattr(args, key) is None else getattr(args, key))
    from tfmood import models
    args.models = args.models.split(",")
    unknown = [n for n in args.models if n not in models.MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; known: {', '.join(models.names())}")
    return args


def main(argv=None):
    args = parse_args(argv)
    info = machine()
    if not info["gpus"]:
        print("NO GPU: these are CPU figures; they say nothing about a GPU's step or input wait.", flush=True)
    start = time.perf_counter()
    make_data(Path(args.workdir) / f"tracks-{args.tracks}", args.tracks, dtype=args.dtype)
    records = str(Path(args.workdir) / f"tracks-{args.tracks}" / records_name(args.dtype))
    print(f"records ready in {time.perf_counter() - start:.0f} s: {records}", flush=True)
    loader = [bench_loader(args, mode, records) for mode in args.augment_on]
    rows = []
    for model in args.models:
        for mode in args.augment_on:
            rows.append(bench_step(args, model, mode, records))
            print(json.dumps(rows[-1]), flush=True)
    settings = dict(vars(args), bands=96, models=args.models)
    result = dict(command="python tools/bench_gpu_feed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                  machine=info, settings=settings, loader=loader, rows=rows, load_average_end=os.getloadavg()[0],
                  total_s=time.perf_counter() - start)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print_tables(result)
    print(f"\n{result['total_s']:.0f} s in all; JSON: {args.out}")


if __name__ == "__main__":
    sys.exit(main())
