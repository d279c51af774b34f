"""Build time and training throughput of every registered model (or a subset) on synthetic spectrograms.

    python tools/bench_models.py                                   # all models, batch 32, 96 x 960
    python tools/bench_models.py --models cp_resnet,resnet34 --steps 3 --warmup 1
    python tools/bench_models.py --mixed-precision --xla           # on a GPU
    python tools/bench_models.py --list-models

Per model: seconds to build it, seconds for the first `train_on_batch` (graph tracing + compilation), then
training samples/s over --steps steps after --warmup more (Adam + binary cross-entropy, random multi-hot labels).
Prints a markdown table for BENCHMARKS.md (`## Models`); a model that fails is reported in its row, not dropped.
"""

import argparse
import sys
import time
import tfmood  # noqa: F401  (before TensorFlow: drops its benign start-up lines, tfmood/_quiet.py)

import keras
import numpy as np
from tqdm import tqdm

from tfmood import models
from tfmood.models.inventory import SEED_INPUTS
from tfmood.tags import NUM_TAGS


def bench_model(name, bands, frames, batch, warmup, steps, xla):
    """dict(build_s, first_step_s, samples_per_s, params) for one model, built and trained from scratch."""
    keras.backend.clear_session()
    start = time.perf_counter()
    model = models.build(name, input_shape=(bands, None, 1), num_tags=NUM_TAGS)
    build_s = time.perf_counter() - start
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy", jit_compile=xla)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, bands, frames, 1)).astype("float32")
    y = (rng.random((batch, NUM_TAGS)) < 0.05).astype("float32")
    start = time.perf_counter()
    model.train_on_batch(x, y)
    first_step_s = time.perf_counter() - start
    for _ in range(warmup):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    elapsed = time.perf_counter() - start
    if not np.isfinite(float(np.ravel(loss)[0])):
        raise FloatingPointError(f"non-finite loss {loss}")
    return dict(build_s=build_s, first_step_s=first_step_s, samples_per_s=batch * steps / elapsed,
                params=model.count_params())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every registered model)")
    parser.add_argument("--list-models", action="store_true", help="print the registered models and exit")
    parser.add_argument("--bands", type=int, default=96, help="mel bands of the synthetic input (default 96)")
    parser.add_argument("--seed-bands", action="store_true",
                        help="use each model's seed input bands instead (256 for CP-JKU, 16 for efficientnet_b7)")
    parser.add_argument("--frames", type=int, default=960, help="frames per crop (default 960)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first (default 2)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    parser.add_argument("--mixed-precision", action="store_true", help="mixed_float16 policy (GPU)")
    parser.add_argument("--xla", action="store_true", help="compile the train step with XLA (jit_compile=True)")
    parser.add_argument("--baseline", default="mobilenetv2",
                        help="model run first; the others' throughput is also given relative to it")
    args = parser.parse_args(argv)
    if args.list_models:
        for name, line in models.describe().items():
            print(f"{name:24s} {line}")
        return 0
    names = args.models.split(",") if args.models else models.names()
    unknown = [n for n in names if n not in models.MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; known: {', '.join(models.names())}")
    if args.baseline in names:
        names = [args.baseline] + [n for n in names if n != args.baseline]
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    print(f"| model | input | build s | first step s | train samples/s (batch {args.batch}) | "
          f"vs {args.baseline} | params |")
    print("|---|---|---|---|---|---|---|")
    baseline = None
    for name in tqdm(names, desc="models", unit="model", file=sys.stderr):
        bands = SEED_INPUTS[name][1][0] if args.seed_bands and name in SEED_INPUTS else args.bands
        try:
            r = bench_model(name, bands, args.frames, args.batch, args.warmup, args.steps, args.xla)
            baseline = r["samples_per_s"] if name == args.baseline else baseline
            ratio = f"{r['samples_per_s'] / baseline:.2f}x" if baseline else "—"
            print(f"| `{name}` | {bands}x{args.frames} | {r['build_s']:.1f} | {r['first_step_s']:.1f} | "
                  f"{r['samples_per_s']:.2f} | {ratio} | {r['params'] / 1e6:.2f} M |", flush=True)
        except Exception as error:  # reported in the table, never silently dropped
            print(f"| `{name}` | {bands}x{args.frames} | failed: {type(error).__name__}: {error} | | | | |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
