"""Stochastic weight averaging (SWA) as CP-JKU coded it, and snapshots for averaging predictions.

    python -m tfmood.train --model cp_resnet --data records/split-0 --epochs 200 --swa-start 150 --swa-every 3
    python -m tfmood.evaluate --model runs/cp_resnet/best.keras --data records/split-0 --out runs/cp_resnet/eval \
        --snapshots $(python -c "from tfmood.training.swa import snapshot_paths as s; print(*s('runs/cp_resnet')[1:])")

From 1-based epoch `start`, every `every` epochs, the weights join an equal-weight running mean
(swa = swa * (1 - 1/(n+1)) + w / (n+1)). Batch-norm statistics of the averaged weights are then recomputed
over one pass of the training data (the averaged weights never produced the old ones), the averaged model is
scored on whole validation tracks (`val_swa_*` in the epoch logs), saved as `swa.keras` and, at the end of
training, exported as `<run>-swa`. That BN pass + scoring costs about half an epoch, and only the last one
reaches swa.keras (each pass starts from scratch), so by default it runs at the run's last update only
(`every_update=True`: at each, as CP-JKU logged it); a skipped pass still opens one iteration of the training
dataset, so the training stream's epoch seeds, hence the run, stay those of a pass at every update. Each collected model is also kept as `swa-<n>.keras` (the last `keep`):
`snapshot_paths(run_dir)` = best checkpoint + those snapshots, whose scores `tfmood.evaluate --snapshots`
averages. The running mean lives in `swa_state.npz` (written atomically with its epoch), so a killed run
resumes with the state that matches its backup.
"""

import glob
import os
import re

import keras
import numpy as np
import tensorflow as tf

from tfmood.training import resume

STATE_FILE = "swa_state.npz"
MODEL_FILE = "swa.keras"
SNAPSHOT_PATTERN = re.compile(r"swa-(\d+)\.keras$")


def is_update_epoch(epoch: int, start: int, every: int) -> bool:
    """CP-JKU's test on the 0-based `epoch`: (epoch+1) >= start and (epoch+1-start) % every == 0."""
    return epoch + 1 >= start and (epoch + 1 - start) % every == 0


class RunningAverage:
    """Equal-weight running mean of a list of weight arrays (float64 accumulators).

    Non-floating weights (counters) cannot be averaged: they take the latest value.
    """

    def __init__(self, average=None, n: int = 0):
        self.average, self.n = average, n

    def add(self, weights) -> None:
        weights = [np.asarray(w) for w in weights]
        if self.average is not None and [w.shape for w in weights] != [a.shape for a in self.average]:
            raise ValueError("The model's weights no longer match the SWA average's shapes; delete "
                             f"{STATE_FILE} from the run folder to restart averaging.")
        if self.average is None:
            self.average = [w.astype(np.float64) if _floating(w) else w.copy() for w in weights]
        else:
            self.average = [a + (w - a) / (self.n + 1) if _floating(w) else w.copy()
                            for a, w in zip(self.average, weights)]
        self.n += 1

    def weights_like(self, weights) -> list:
        """The average cast to the dtypes of `weights` (what `model.set_weights` expects)."""
        return [a.astype(np.asarray(w).dtype) for a, w in zip(self.average, weights)]

    def save(self, path: str, epoch: int) -> None:
        arrays = {f"w{i}": a for i, a in enumerate(self.average)}
        resume.save_versioned(path, epoch, lambda f: np.savez(f, n=self.n, epoch=epoch, **arrays))

    @classmethod
    def load(cls, path: str, max_epoch: int):
        """The state saved at the latest epoch <= `max_epoch`, or an empty average."""
        def read(f):
            with np.load(f) as data:
                count = len([k for k in data.files if k.startswith("w")])
                return cls([data[f"w{i}"] for i in range(count)], int(data["n"]))
        return resume.load_versioned(path, max_epoch, read, lambda f: int(np.load(f)["epoch"])) or cls()


def _floating(array) -> bool:
    return np.issubdtype(np.asarray(array).dtype, np.floating)


def batch_norm_layers(model) -> list:
    # `_flatten_layers` reaches BN layers inside nested models and custom blocks alike.
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


class _Moments:
    """Exact running mean and (population) variance of one BN layer's inputs, per channel.

    Batches combine with Chan et al.'s parallel formula in float64, so the result is the mean/variance
    over every position of every batch, as if computed on the whole pass at once.
    """

    def __init__(self, layer):
        self.layer = layer
        channels = int(layer.moving_mean.shape[0])
        self.count = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.mean = tf.Variable(tf.zeros([channels], tf.float64), trainable=False)
        self.m2 = tf.Variable(tf.zeros([channels], tf.float64), trainable=False)

    def reset(self):
        for v in (self.count, self.mean, self.m2):
            v.assign(tf.zeros_like(v))

    def update(self, inputs):
        x = tf.cast(inputs, tf.float64)
        axis = self.layer.axis % len(x.shape)
        axes = [i for i in range(len(x.shape)) if i != axis]
        n_b = tf.cast(tf.size(x) // tf.shape(x)[axis], tf.float64)
        mean_b, var_b = tf.nn.moments(x, axes)
        n = self.count + n_b
        delta = mean_b - self.mean
        self.m2.assign_add(var_b * n_b + delta ** 2 * self.count * n_b / n)
        self.mean.assign_add(delta * n_b / n)
        self.count.assign(n)

    def install(self):
        original = type(self.layer).call.__get__(self.layer)

        def call(inputs, training=None, mask=None):
            self.update(inputs)
            return original(inputs, training=training, mask=mask)
        self.layer.call = call  # an instance attribute shadows the class method until `remove`

    def remove(self):
        self.layer.__dict__.pop("call", None)

    def write(self):
        self.layer.moving_mean.assign(tf.cast(self.mean, self.layer.moving_mean.dtype))
        self.layer.moving_variance.assign(tf.cast(self.m2 / self.count, self.layer.moving_variance.dtype))


class BatchNormUpdate:
    """Recompute every BN layer's moving statistics of `model` over one pass of `dataset` (CP-JKU's
    `bn_update`): a training-mode forward pass (BN normalises with batch statistics, as in training)
    that records each BN layer's input mean and variance; these become the moving statistics.

    The pass function is traced once and reused for later passes.
    """

    def __init__(self, model, max_batches=None, finish=None):
        self.model, self.max_batches = model, max_batches
        self.finish = finish or (lambda x: x)  # deferred batches (`tfmood.data.deferred`): finished in the pass
        self.moments = [_Moments(layer) for layer in batch_norm_layers(model)]
        self._step = None

    def __call__(self, dataset) -> int:
        """Run the pass; returns the number of batches seen (0 when the model has no BN layer)."""
        if not self.moments:
            return 0
        if self._step is None:
            self._step = tf.function(lambda x: self.model(self.finish(x), training=True), reduce_retracing=True)
        for m in self.moments:
            m.reset()
            m.install()
        batches = 0
        try:
            data = dataset.take(self.max_batches) if self.max_batches else dataset
            for batch in data:
                self._step(batch[0] if isinstance(batch, (tuple, list)) else batch)
                batches += 1
        finally:
            for m in self.moments:
                m.remove()
        if not batches:
            raise ValueError("The BN update pass got no batch: the training dataset is empty.")
        for m in self.moments:
            m.write()
        return batches

    def skip(self, dataset) -> None:
        """Advance `dataset` as a pass would, without the pass: open one iteration and drop it.

        The training dataset draws a new epoch seed per iteration (`seeds.stream`), so a pass consumes one
        epoch seed of the training stream; skipping it must too, or every later epoch would see other crops.
        """
        if self.moments:  # `__call__` does not iterate a model without BN either
            iter(dataset.take(self.max_batches) if self.max_batches else dataset)  # opened, then dropped


def snapshot_paths(run_dir: str, keep: int = 4) -> list:
    """Best checkpoint + the last `keep` SWA snapshots of a run, for `tfmood.evaluate --snapshots`."""
    best = os.path.join(run_dir, "best.keras")
    if not os.path.exists(best):
        raise FileNotFoundError(f"No best.keras in {run_dir!r}: is it a finished `tfmood.train` run folder?")
    return [best, *snapshots(run_dir)[-keep:]]


def snapshots(run_dir: str) -> list:
    """The run's `swa-<n>.keras` files ordered by n."""
    found = [(int(SNAPSHOT_PATTERN.search(p).group(1)), p)
             for p in glob.glob(os.path.join(run_dir, "swa-*.keras")) if SNAPSHOT_PATTERN.search(p)]
    return [p for _, p in sorted(found)]


def save_model_atomic(model, path: str) -> None:
    tmp = os.path.join(os.path.dirname(path), f".tmp-{os.getpid()}-{os.path.basename(path)}")
    model.save(tmp)  # Keras wants the `.keras` suffix, so the temporary name keeps it
    os.replace(tmp, path)


class SWA(keras.callbacks.Callback):
    """CP-JKU's SWA as a callback. Put it before `TrackEvaluation` (its figures then reach history.jsonl)
    and before `BackupAndRestore` (the saved state must never lag the backup).

    `train_data`: the training dataset (one pass recomputes BN statistics; `bn_batches` caps it).
    `evaluation`: keyword arguments of `pipeline.predict_tracks` (records_dir, split, crop_frames, ...),
    or None to skip validation of the averaged model. Every file goes to `run_dir`.
    `every_update`: BN pass, scoring and swa.keras at every update; False (default): at the last update
    before `params["epochs"]` only (every update when the callback runs outside `fit`).
    `finish`: what turns a batch of `train_data` into the model's input (`deferred.finish`; default: as it is).
    """

    def __init__(self, start: int, every: int, train_data, run_dir: str, evaluation=None, keep: int = 4,
                 bn_batches=None, every_update: bool = False, finish=None):
        super().__init__()
        for name, value in (("start", start), ("every", every), ("keep", keep)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SWA `{name}` must be an integer >= 1. Received: {value!r}")
        self.start, self.every, self.keep, self.bn_batches = start, every, keep, bn_batches
        self.train_data, self.run_dir, self.evaluation = train_data, run_dir, evaluation
        self.every_update, self.finish = every_update, finish
        self.average, self.bn_update, self.last = None, None, None  # last: (labels, scores) of the last scoring

    @property
    def state_path(self):
        return os.path.join(self.run_dir, STATE_FILE)

    def on_epoch_begin(self, epoch, logs=None):
        if self.average is None:  # first epoch of this process: `epoch` = epochs the backup completed
            self.average = RunningAverage.load(self.state_path, max_epoch=epoch)
            self.bn_update = BatchNormUpdate(self.model, self.bn_batches, self.finish)
            for stale in snapshots(self.run_dir)[self.average.n:]:  # from a rolled-back epoch or an older run
                os.remove(stale)

    def on_epoch_end(self, epoch, logs=None):
        if not is_update_epoch(epoch, self.start, self.every):
            return
        current = self.model.get_weights()
        self.average.add(current)
        save_model_atomic(self.model, os.path.join(self.run_dir, f"swa-{self.average.n}.keras"))
        for old in snapshots(self.run_dir)[:-self.keep]:
            os.remove(old)
        self.average.save(self.state_path, epoch + 1)
        if not (self.every_update or self.is_last_update(epoch)):
            self.bn_update.skip(self.train_data)
            return
        try:
            self.model.set_weights(self.average.weights_like(current))
            self.bn_update(self.train_data)
            if logs is not None and self.evaluation:
                logs.update(self.score())
            save_model_atomic(self.model, os.path.join(self.run_dir, MODEL_FILE))
        finally:
            self.model.set_weights(current)

    def is_last_update(self, epoch: int) -> bool:
        epochs = (self.params or {}).get("epochs")
        return epochs is None or epoch + self.every >= epochs

    def score(self) -> dict:
        from tfmood.data import pipeline
        from tfmood.training.callbacks import track_metrics
        from tfmood.training.strategy import local_predictor

        _, scores, labels = pipeline.predict_tracks(local_predictor(self.model), **self.evaluation)
        self.last = (labels, scores)
        return track_metrics(labels, scores, prefix="val_swa_")


def summarize(cfg, paths, records: str, chief: bool) -> dict:
    """After training: score `swa.keras` on validation, fit its thresholds, export it as `<run>-swa`.

    Returns `{"swa": {...}}` for summary.json, or `{}` when SWA never collected a model.
    """
    path = os.path.join(paths.root, MODEL_FILE)
    if not getattr(cfg, "swa_start", None) or not os.path.exists(path):
        return {}
    from tfmood.data import pipeline
    from tfmood.evaluation.metrics import official_metrics
    from tfmood.evaluation.thresholds import decide, fit_thresholds, save_thresholds

    model = keras.models.load_model(path)
    _, scores, labels = pipeline.predict_tracks(model, records, "validation", cfg.crop_frames,
                                                cfg.eval_segments, cfg.batch_size)
    thresholds = fit_thresholds(labels, scores)
    result = {"checkpoint": path, "snapshots": snapshot_paths(paths.root, cfg.swa_keep),
              "validation": official_metrics(labels, scores, decide(scores, thresholds))}
    if chief:
        save_thresholds(os.path.join(paths.root, "thresholds-swa.tsv"), thresholds)
        if cfg.export:
            from tfmood.export import export_model
            result["saved_model"] = str(export_model(model, f"{cfg.run_name}-swa", cfg.export_dir, thresholds,
                                                     crop_frames=cfg.crop_frames, segments=cfg.eval_segments))
    return {"swa": result}


def check_options(cfg) -> None:
    """Validate the SWA fields of a `TrainConfig`."""
    if cfg.swa_start is None:
        return
    for name in ("swa_start", "swa_every", "swa_keep"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1. Received: {value!r}")
    if cfg.swa_start > cfg.epochs:
        raise ValueError(f"`swa_start` ({cfg.swa_start}) is after the last epoch ({cfg.epochs}): SWA would "
                         "never collect a model. Lower --swa-start or raise --epochs.")
    if cfg.swa_bn_batches is not None and (not isinstance(cfg.swa_bn_batches, int) or cfg.swa_bn_batches < 1):
        raise ValueError(f"`swa_bn_batches` must be an integer >= 1 or None. Received: {cfg.swa_bn_batches!r}")


def attach(callbacks: list, cfg, run_dir: str, records: str, train_data) -> list:
    """`callbacks` with an `SWA` callback inserted before `TrackEvaluation` (when `cfg.swa_start` is set)."""
    if cfg.swa_start is None:
        return callbacks
    from tfmood.training.callbacks import TrackEvaluation

    evaluation = dict(records_dir=records, split="validation", crop_frames=cfg.crop_frames,
                      segments=cfg.eval_segments, batch_size=cfg.batch_size)
    from tfmood.data import deferred
    callback = SWA(cfg.swa_start, cfg.swa_every, train_data, run_dir, evaluation, cfg.swa_keep, cfg.swa_bn_batches,
                   finish=deferred.finisher(cfg.crop_transforms))
    at = next((i for i, c in enumerate(callbacks) if isinstance(c, TrackEvaluation)), 0)
    return callbacks[:at] + [callback] + callbacks[at:]
