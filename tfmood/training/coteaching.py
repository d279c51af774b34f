"""Co-teaching (Han et al. 2018) for multi-label tagging, as SELAB-HCMUS 2021 used it (systems.md C1-C2).

    pair = CoTeaching(models.build("efficientnet_b0"), models.build("rexnet_100"))
    pair.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.get("weighted_focal"))
    pair.fit(train_ds, callbacks=[ForgetRateSchedule(forget_rate=0.05, forget_epochs=10), ...])
    scores = pair(x)                      # the mean of both nets' scores: predict/evaluate/export as usual

Each step, both nets score the batch; a sample's loss is the configured loss averaged over the tags (SELAB's
sample-level ranking, C3a). Each net keeps the `1 - R(epoch)` fraction of the batch with its smallest losses,
and its *peer* is updated on those samples only (cross-update): label noise that one net has learned to ignore
is kept away from the other. `R` ramps from 0 to `forget_rate` over `forget_epochs` (0 = constant, as SELAB).

Design choices:
- One optimizer updates both nets. Adam, AdamW and SGD act on each variable independently, and both nets step
  once per batch, so this equals the two per-net optimizers of the original code, while every stock callback
  (ReduceLROnPlateau, LearningRateScheduler, ModelCheckpoint, BackupAndRestore) sees one `model.optimizer`.
- R is the non-trainable variable `forget_rate`, set by `ForgetRateSchedule` at each epoch begin from the epoch
  index, and saved with the weights, so checkpoints and resumed runs agree.
- Under `tf.distribute` each replica ranks its own part of the batch (no cross-replica sort): the kept set
  differs from a global ranking unless the forget rate is 0. The update losses are divided by the *global*
  number of kept samples (kept per replica x replicas), and the optimizer sums the replicas' gradients, so one
  step on N replicas equals one single-device step whenever the kept sets coincide (tests/test_coteaching.py).
- Nets with two branches (`DualBranchTagger`, AMLAG) are ranked and updated on their dual-output loss: the
  mean over both branches of each sample's loss (systems.md B5).
- Metrics: `loss` (mean of both nets' update losses), `loss_a`, `loss_b`, `kept_fraction` and `agreement`
  (fraction of the batch that both nets keep).
"""

import os

import keras
import tensorflow as tf
from keras import ops

from tfmood.training import losses as losses_lib


def forget_rate_at(epoch: int, forget_rate: float, forget_epochs: int) -> float:
    """R at 0-based `epoch`: `forget_rate * min(epoch / forget_epochs, 1)`; constant when forget_epochs is 0.

    This is the paper's R(T) = min(T * tau / T_k, tau) with T the 0-based epoch: the first epoch keeps every
    sample and tau is reached at epoch T_k. Han et al.'s code (`linspace(0, tau, T_k)`) reaches tau one epoch
    earlier, at T_k - 1.
    """
    if forget_epochs <= 0:
        return float(forget_rate)
    return float(forget_rate) * min(epoch / forget_epochs, 1.0)


class ForgetRateSchedule(keras.callbacks.Callback):
    """Sets the pair's `forget_rate` variable at each epoch begin (and logs it as `forget_rate`)."""

    def __init__(self, forget_rate: float, forget_epochs: int = 10):
        super().__init__()
        if not 0 <= forget_rate < 1:
            raise ValueError(f"`forget_rate` must be in [0, 1). Received: {forget_rate!r}")
        self.forget_rate, self.forget_epochs = forget_rate, forget_epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.model.forget_rate.assign(forget_rate_at(epoch, self.forget_rate, self.forget_epochs))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["forget_rate"] = float(ops.convert_to_numpy(self.model.forget_rate))


@keras.saving.register_keras_serializable(package="tfmood")
class CoTeaching(keras.Model):
    """Two taggers trained by co-teaching; `call` returns the mean of their scores."""

    def __init__(self, net_a: keras.Model, net_b: keras.Model, **kwargs):
        super().__init__(**kwargs)
        # === Layers ===
        self.net_a, self.net_b = net_a, net_b
        # === State ===
        self.forget_rate = self.add_weight(shape=(), initializer="zeros", trainable=False, name="forget_rate")
        # "loss" is Keras' own `_loss_tracker` (created by `compile`), which `fit` reports like any model's.
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss_a", "loss_b", "kept_fraction", "agreement")}
        self.sample_loss = self._loss = None
        self.build(net_a.input_shape)

    def build(self, input_shape):
        pass  # both nets are built models

    @property
    def networks(self) -> dict:
        return {"a": self.net_a, "b": self.net_b}

    # Shapes as a functional model has them: `tfmood.export` checks the bands and the number of tags.
    @property
    def input_shape(self):
        return self.net_a.input_shape

    @property
    def output_shape(self):
        return self.net_a.output_shape

    def call(self, inputs, training=None):
        return (self.net_a(inputs, training=training) + self.net_b(inputs, training=training)) / 2

    def compile(self, optimizer="adam", loss="bce", metrics=None, **kwargs):
        """`loss`: a `keras.losses.Loss` or a `tfmood.training.losses` name; it is applied per sample."""
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        loss = losses_lib.get(loss) if isinstance(loss, str) else keras.losses.get(loss)
        self._loss, self.sample_loss = loss, losses_lib.per_sample(loss)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None:
            config["loss"] = keras.saving.serialize_keras_object(self._loss)
        return config

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:  # loading restores the optimizer's slots next: they must exist
            self.optimizer.build(self.trainable_variables)

    # === Training ===
    def _sample_losses(self, net, x, y, training):
        """Scores `[batch, tags]` and per-sample losses `[batch]`; two-branch nets average both branches."""
        scores = net(x, training=training)
        outputs = net.branch_outputs(x, scores, training) if hasattr(net, "branch_outputs") else {"": scores}
        per_sample = ops.mean(ops.stack([self.sample_loss(y, o) for o in outputs.values()]), axis=0)
        return scores, per_sample

    def _keep_smallest(self, per_sample):
        """1.0 for the int((1 - R) * batch) samples (at least 1) with the smallest loss, else 0.0."""
        n = tf.shape(per_sample)[0]
        remember = (1.0 - tf.cast(self.forget_rate, tf.float32)) * tf.cast(n, tf.float32)
        k = tf.maximum(1, tf.cast(tf.floor(remember + 1e-4), tf.int32))  # 1e-4: 0.95 * 20 is 18.999998 in fp32
        # Rank by a stable double argsort, not top_k: k changes with R, and XLA needs static top_k sizes.
        rank = tf.argsort(tf.argsort(tf.cast(per_sample, tf.float32), stable=True), stable=True)
        return tf.cast(rank < k, tf.float32)

    @staticmethod
    def _kept_mean(per_sample, keep):
        """Sum over this replica's kept samples / kept samples of *all* replicas, and the local mean.

        Every replica gets the same number of samples (the pipeline drops the remainder), so all keep the same
        count and the global count is the local one times the replicas: the assumption Keras' own loss scaling
        makes, here without an extra all-reduce inside the step.
        """
        local = ops.sum(keep)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        summed = ops.sum(keep * ops.cast(per_sample, "float32"))
        return summed / (local * replicas), summed / local

    def _regularization(self):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        extra = [ops.cast(v, "float32") for v in self.net_a.losses + self.net_b.losses]
        return ops.sum(ops.stack(extra)) / replicas if extra else 0.0

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("CoTeaching ranks samples by loss and does not take sample weights.")
        with tf.GradientTape() as tape:
            scores_a, loss_a = self._sample_losses(self.net_a, x, y, True)
            scores_b, loss_b = self._sample_losses(self.net_b, x, y, True)
            keep_a, keep_b = self._keep_smallest(loss_a), self._keep_smallest(loss_b)
            # Cross-update: each net learns from the samples its peer found clean.
            update_a, local_a = self._kept_mean(loss_a, keep_b)
            update_b, local_b = self._kept_mean(loss_b, keep_a)
            total = self.optimizer.scale_loss(update_a + update_b + self._regularization())
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(total, variables), variables)
        self._track(local_a, local_b, keep_a, keep_b)
        return self.compute_metrics(x, y, (scores_a + scores_b) / 2, sample_weight=None)

    def _track(self, loss_a, loss_b, keep_a, keep_b):
        self._loss_tracker.update_state((loss_a + loss_b) / 2)
        for name, value in (("loss_a", loss_a), ("loss_b", loss_b),
                            ("kept_fraction", ops.mean(keep_a)), ("agreement", ops.mean(keep_a * keep_b))):
            self.trackers[name].update_state(value)

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        scores_a, loss_a = self._sample_losses(self.net_a, x, y, False)
        scores_b, loss_b = self._sample_losses(self.net_b, x, y, False)
        everything = ops.ones_like(ops.cast(loss_a, "float32"))
        self._track(ops.mean(loss_a), ops.mean(loss_b), everything, everything)
        return self.compute_metrics(x, y, (scores_a + scores_b) / 2, sample_weight=None)

    # === Config ===
    def get_config(self):
        config = super().get_config()
        config["net_a"] = keras.saving.serialize_keras_object(self.net_a)
        config["net_b"] = keras.saving.serialize_keras_object(self.net_b)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        nets = [keras.saving.deserialize_keras_object(config.pop(k), custom_objects=custom_objects)
                for k in ("net_a", "net_b")]
        return cls(*nets, **config)


# --- Wiring into tfmood.training.trainer ---------------------------------------------------------------

def build_pair(cfg, net_a: keras.Model, bands: int) -> keras.Model:
    """`net_a` paired with a fresh `cfg.peer` (same options as the model when it is the same architecture)."""
    from tfmood import models
    options = cfg.peer_options if cfg.peer_options is not None else (
        cfg.model_options if cfg.peer == cfg.model else {})
    net_b = models.build(cfg.peer, input_shape=(bands, None, 1), **options)
    return CoTeaching(net_a, net_b, name="coteaching")


def callbacks(cfg) -> list:
    return [ForgetRateSchedule(cfg.forget_rate, cfg.forget_epochs)] if cfg.peer else []


def member_summaries(model, cfg, paths, records: str, chief: bool) -> dict:
    """For a pair: score, threshold, checkpoint (`best-a.keras`) and export (`NAME-a`) each net on its own.

    The pair itself (the mean of both nets) stays the run's main result, exported as `NAME`.
    Returns `{"networks": {"a": {...}, "b": {...}}}`, or `{}` for a single model.
    """
    if not isinstance(model, CoTeaching):
        return {}
    from tfmood.data import pipeline
    from tfmood.evaluation.metrics import official_metrics
    from tfmood.evaluation.thresholds import decide, fit_thresholds
    members = {}
    for key, net in model.networks.items():
        _, scores, labels = pipeline.predict_tracks(net, records, "validation", cfg.crop_frames,
                                                    cfg.eval_segments, cfg.batch_size)
        thresholds = fit_thresholds(labels, scores)
        member = {"model": net.name, "validation": official_metrics(labels, scores, decide(scores, thresholds))}
        if chief:
            member["checkpoint"] = _save_atomic(net, os.path.join(paths.root, f"best-{key}.keras"))
            if cfg.export:
                from tfmood.export import export_model
                member["saved_model"] = str(export_model(net, f"{cfg.run_name}-{key}", cfg.export_dir, thresholds,
                                                         crop_frames=cfg.crop_frames, segments=cfg.eval_segments))
        members[key] = member
    return {"networks": members}


def _save_atomic(model, path):
    tmp = f"{path[:-len('.keras')]}.tmp-{os.getpid()}.keras"
    model.save(tmp)
    os.replace(tmp, path)
    return path
