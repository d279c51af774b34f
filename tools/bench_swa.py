"""Benchmark SWA's cost per epoch and multi-replica scaling (2 logical CPU devices).

Usage:
    python tools/bench_swa.py swa                       # mobilenetv2 alpha .35, 256 demo tracks, crop 128
    python tools/bench_swa.py swa --epochs 5 --tracks 512
    python tools/bench_swa.py swa --every-update        # BN pass + scoring + swa.keras at every update
    python tools/bench_swa.py scaling --steps 20        # samples/s, 1 vs 2 replicas (MirroredStrategy)

swa: trains with an SWA update after *every* epoch and times, per epoch, the plain epoch (training steps +
whole-track validation) and the SWA update. By default (as `tfmood.train` runs it) the updates before the
last only average and save the snapshot and state; the last also runs the BN recomputation pass, scores
the averaged model and saves swa.keras. The added cost per epoch is quoted for CP-JKU's schedule: an
update every 3 epochs, 27 updates (epochs 121-200), the last one full. With --every-update each update is
full (the behaviour before 2026-12-01); then the figures are per full update.
scaling: the same compiled training step on one device versus MirroredStrategy over two logical CPU devices
(one physical CPU: this measures the strategy's overhead, not a speed-up), same global batch.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_records(folder, tracks):
    from tfmood.data import convert, demo

    splits = demo.generate(os.path.join(folder, "src"), seed=0,
                           sizes={"train": tracks, "validation": 112, "test": 56}, frame_range=(200, 400))
    out = os.path.join(folder, "records")
    convert.run(splits, convert.Options(features_root=os.path.join(folder, "src", "features"), out_dir=out),
                num_shards=4, workers=1, show_progress=False)
    return out


def timed(obj, name, totals):
    """Wrap `obj.name` so that its wall time accumulates in `totals[name]`."""
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
    setattr(obj, name, wrapper)


def bench_swa(args) -> dict:
    import keras
    from tfmood import models
    from tfmood.data import pipeline
    from tfmood.data.convert import read_manifest
    from tfmood.training import swa
    from tfmood.training.callbacks import TrackEvaluation

    folder = tempfile.mkdtemp(prefix="bench-swa-")
    records = make_records(folder, args.tracks)
    model = models.build(args.model, input_shape=(read_manifest(records)["bands"], None, 1), alpha=0.35)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    train = pipeline.train_dataset(records, "train", args.batch_size, args.crop_frames, seed=0)
    evaluation = dict(records_dir=records, split="validation", crop_frames=args.crop_frames, segments=4,
                      batch_size=args.batch_size)
    averaging = swa.SWA(1, 1, train, folder, evaluation, every_update=args.every_update)  # after every epoch
    totals, rows = {}, []
    timed(averaging, "on_epoch_end", totals)
    timed(averaging, "score", totals)
    timed(swa.BatchNormUpdate, "__call__", totals)

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            totals.clear()
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):  # after TrackEvaluation, before SWA
            self.plain = time.perf_counter() - self.start

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rows.append({"epoch_s": clock.plain, "swa_s": totals["on_epoch_end"],
                         "bn_pass_s": totals.get("__call__", 0.0), "swa_validation_s": totals.get("score", 0.0)})

    clock = Clock()
    model.fit(train, epochs=args.epochs, verbose=0,
              callbacks=[TrackEvaluation(**evaluation), clock, averaging, Record()])
    if args.every_update:
        return summarize(rows[1:])  # the first epoch traces every function
    return summarize_lazy(rows[1:-1], rows[-1])


CPJKU_UPDATES, CPJKU_EVERY = 27, 3  # _cpjku2019.SWA over 200 epochs: 1-based epochs 121, 124, ..., 199


def summarize_lazy(rows, last) -> dict:
    """Updates before the last (averaging, snapshot) vs the last (+ BN pass, scoring, swa.keras)."""
    if not rows:
        raise SystemExit("--epochs must be >= 3: one traced epoch, one timed light update, the last update")
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    per_update = ((CPJKU_UPDATES - 1) * median["swa_s"] + last["swa_s"]) / CPJKU_UPDATES
    return {"median_s": median, "last_update_s": last, "epochs_timed": len(rows),
            "light_update_vs_epoch": median["swa_s"] / median["epoch_s"],
            "added_per_epoch_cpjku": per_update / median["epoch_s"] / CPJKU_EVERY}


def summarize(rows) -> dict:
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    bn_share = median["bn_pass_s"] / median["epoch_s"]
    other = median["swa_s"] - median["bn_pass_s"]
    return {"median_s": median, "epochs_timed": len(rows),
            "added_per_epoch_swa_every_epoch": median["swa_s"] / median["epoch_s"],
            "added_per_epoch_swa_every_3": median["swa_s"] / median["epoch_s"] / 3,
            "added_per_epoch_every_3_bn_quarter_epoch": (other + median["bn_pass_s"] / 4) / median["epoch_s"] / 3,
            "bn_pass_vs_epoch": bn_share}


def bench_scaling(args) -> dict:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]  # before TensorFlow initialises its devices
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from tfmood import models

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch_size, 96, args.crop_frames, 1)).astype("float32")
    y = (rng.random((args.batch_size, 56)) < 0.1).astype("float32")
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    result = {}
    for name, strategy in (("1 replica", tf.distribute.get_strategy()),
                           ("2 replicas", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        with strategy.scope():
            model = models.build(args.model, input_shape=(96, None, 1), alpha=0.35)
            model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # trace
        start = time.perf_counter()
        model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
        result[name] = args.steps * args.batch_size / (time.perf_counter() - start)
    result["ratio_2_over_1"] = result["2 replicas"] / result["1 replica"]
    return {"samples_per_second": result, "global_batch": args.batch_size, "crop_frames": args.crop_frames}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=("swa", "scaling"))
    p.add_argument("--model", default="mobilenetv2")
    p.add_argument("--tracks", type=int, default=256, help="training tracks (demo data)")
    p.add_argument("--epochs", type=int, default=5, help="epochs (the first, with tracing, is not counted)")
    p.add_argument("--every-update", action="store_true", help="BN pass, scoring and swa.keras at each update")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--crop-frames", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="scaling: timed steps per setup")
    args = p.parse_args(argv)
    result = (bench_swa if args.part == "swa" else bench_scaling)(args)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
