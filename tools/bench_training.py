"""Benchmark training machinery against a plain single-model step measured in the same run.

Usage:
    python tools/bench_training.py --coteaching                      # mobilenetv2, batch 32 of 96 x 960
    python tools/bench_training.py --coteaching --model efficientnet_b0 --frames 480 --rounds 5

--coteaching: one co-teaching step (two copies of MODEL, forward + per-sample ranking + cross-update) versus one
step of MODEL alone, on the same random batch; steps alternate in rounds so that load from other processes hits
both alike. Reports the median wall and CPU seconds per step and their ratios (target <= 2.2x: two nets cost 2x).
"""

import argparse
import json
import os
import statistics
import sys
import time
import tfmood  # noqa: F401  (before TensorFlow: drops its benign start-up lines, tfmood/_quiet.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def step_seconds(model, x, y, steps):
    """Median (wall, CPU) seconds of `steps` compiled training steps (`train_on_batch` runs fit's train
    function). CPU seconds (all threads of this process) vary less than wall time on a shared machine."""
    wall, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        model.train_on_batch(x, y)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def bench_coteaching(args) -> dict:
    import keras
    import numpy as np
    from tfmood import models
    from tfmood.training import losses
    from tfmood.training.coteaching import CoTeaching

    build = lambda: models.build(args.model, input_shape=(args.bands, None, 1), **args.options)  # noqa: E731
    single = build()
    single.compile(keras.optimizers.Adam(1e-3), loss=losses.get("bce"))
    pair = CoTeaching(build(), build())
    pair.compile(keras.optimizers.Adam(1e-3), loss=losses.get("bce"))
    pair.forget_rate.assign(0.05)  # ranking and masking are on: int(.95 * 32) = 30 samples kept
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch_size, args.bands, args.frames, 1)).astype("float32")
    y = (rng.random((args.batch_size, 56)) < 0.05).astype("float32")
    for model in (single, pair):  # trace and warm up
        step_seconds(model, x, y, 2)
    rounds = {"single": [], "coteaching": []}
    for _ in range(args.rounds):
        rounds["single"].append(step_seconds(single, x, y, args.steps))
        rounds["coteaching"].append(step_seconds(pair, x, y, args.steps))
    result = {}
    for clock, i in (("", 0), ("_cpu", 1)):
        for kind, values in rounds.items():
            result[kind + clock] = statistics.median(v[i] for v in values)
        result["ratio" + clock] = result["coteaching" + clock] / result["single" + clock]
    result.update(model=args.model, options=args.options, batch=args.batch_size, bands=args.bands,
                  frames=args.frames, params_single=single.count_params())
    return result


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--coteaching", action="store_true", help="co-teaching step vs single-model step")
    p.add_argument("--model", default="mobilenetv2")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="model builder option, JSON value (repeatable)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bands", type=int, default=96)
    p.add_argument("--frames", type=int, default=960)
    p.add_argument("--steps", type=int, default=3, help="timed steps per round (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    args = p.parse_args(argv)
    args.options = {k: json.loads(v) for k, _, v in (item.partition("=") for item in args.model_option)}
    return args


def main(argv=None):
    args = parse_args(argv)
    if not args.coteaching:
        print("Nothing to measure: pass --coteaching.", file=sys.stderr)
        return 2
    r = bench_coteaching(args)
    print(json.dumps(r))
    print(f"{r['model']} batch {r['batch']} of {r['bands']}x{r['frames']}: single {r['single']:.3f} s/step, "
          f"co-teaching {r['coteaching']:.3f} s/step, ratio {r['ratio']:.2f}x (target <= 2.2x); CPU seconds: "
          f"{r['single_cpu']:.3f} vs {r['coteaching_cpu']:.3f}, ratio {r['ratio_cpu']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
