"""Training losses by name, and CP-JKU's mixup with *mixed losses*.

    loss = losses.get("weighted_focal")                  # a keras.losses.Loss (mean over tags per sample)
    loss = losses.get("bce", mixed=True)                 # expects packed targets from `mixup_mixed_losses`
    ds = ds.map(lambda x, y: losses.mixup_mixed_losses(x, y, alpha=0.3))

Every loss maps `(y [batch, tags], scores [batch, tags])` to one value per sample (the mean over tags) when
built with `reduction=None`, which co-teaching needs to rank samples. Our models end in a sigmoid, so the
losses take probabilities (`from_logits=False`); SELAB's focal loss was coded on logits, and computing it from
the clipped probabilities gives the same values up to Keras' 1e-7 clipping.
"""

import keras
import tensorflow as tf
from keras import ops

from tfmood.data import seeds
from tfmood.data import deferred
from tfmood.data.augment import blend, permutation, sample_beta
from tfmood.registry import Registry

LOSSES = Registry("loss function")


@LOSSES.register("bce")
def bce(reduction="sum_over_batch_size"):
    """Binary cross-entropy on sigmoid scores (MTG baseline, AMLAG, CP-JKU)."""
    return keras.losses.BinaryCrossentropy(reduction=reduction)


@LOSSES.register("focal")
def focal(reduction="sum_over_batch_size"):
    """Keras' binary focal cross-entropy, gamma 2, no class balancing (Lin et al. 2017)."""
    return keras.losses.BinaryFocalCrossentropy(gamma=2.0, reduction=reduction)


@LOSSES.register("weighted_focal")
def weighted_focal(reduction="sum_over_batch_size"):
    """SELAB-HCMUS 2021 focal loss: weight .25 on negatives, .75 on positives (soft labels > 0 too), gamma 2."""
    return WeightedFocalLoss(reduction=reduction)


@keras.saving.register_keras_serializable(package="tfmood")
class WeightedFocalLoss(keras.losses.Loss):
    """`a * (1 - pt)**gamma * BCE` per entry, `pt = exp(-BCE)`, `a = alpha` where y == 0 else `1 - alpha`.

    SELAB-HCMUS (systems.md C2) counts every target > 0 as positive, so mixup's soft labels get the positive
    weight; Keras' `BinaryFocalCrossentropy(apply_class_balancing=True)` would interpolate the weight instead.
    """

    def __init__(self, alpha=0.25, gamma=2.0, reduction="sum_over_batch_size", name="weighted_focal"):
        super().__init__(name=name, reduction=reduction)
        self.alpha, self.gamma = float(alpha), float(gamma)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        entry = ops.binary_crossentropy(y_true, y_pred)  # elementwise, clipped probabilities
        weight = ops.where(y_true > 0, 1.0 - self.alpha, self.alpha)
        return ops.mean(weight * (1.0 - ops.exp(-entry)) ** self.gamma * entry, axis=-1)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


def get(name: str, reduction="sum_over_batch_size", mixed=False):
    """The loss `name` (see `LOSSES.names()`); `mixed=True` wraps it for packed mixup targets."""
    loss = LOSSES.get(name)(reduction=reduction)
    return MixedLoss(loss, reduction=reduction) if mixed else loss


def per_sample(loss: keras.losses.Loss) -> keras.losses.Loss:
    """A copy of `loss` that returns one value per sample (the mean over tags) instead of the batch mean."""
    return loss.__class__.from_config({**loss.get_config(), "reduction": None})


# --- CP-JKU mixup with mixed losses (systems.md A5) ---------------------------------------------------
# The partner labels and lambda travel packed in the target tensor, `[y_a | y_b | lam]`, so `fit`, the
# distribution strategy and co-teaching's per-sample ranking see an ordinary `(x, y)` pair.

def pack(y_a, y_b, lam):
    return tf.concat([y_a, tf.cast(y_b, y_a.dtype), tf.cast(lam, y_a.dtype)[:, None]], axis=-1)


def unpack(y):
    tags = (y.shape[-1] - 1) // 2
    return y[..., :tags], y[..., tags:2 * tags], y[..., 2 * tags]


def mixup_mixed_losses(x, y, alpha: float, seed=None):
    """CP-JKU's `my_mixup`: per-sample lam ~ Beta(alpha, alpha), lam := max(lam, 1 - lam), one permutation;
    `x := lam x + (1 - lam) x[perm]`. Returns `(x, packed [y | y[perm] | lam])` for a `MixedLoss`.

    max(lam, 1 - lam) keeps each mix dominated by its own example, so `y` stays the main target.
    `seed`: a `[2]` stateless seed (one per batch, as `mixed_loss_batches` passes), an int, or None (fresh).
    A deferred batch (`tfmood.data.deferred`) is paired instead; the training step blends it.
    """
    if not alpha > 0:
        raise ValueError(f"`alpha` must be > 0 for mixup. Received: {alpha!r}")
    batch = tf.shape(y)[0]
    seed = seeds.resolve(seed)
    lam = sample_beta([batch], alpha, seed)
    lam = tf.maximum(lam, 1.0 - lam)
    perm = permutation(batch, seed)
    x = deferred.pair(x, lam, perm) if deferred.is_deferred(x) else blend(x, lam, perm)
    return x, pack(y, tf.gather(y, perm), lam)


def mixed_loss_batches(ds: tf.data.Dataset, alpha: float, seed=None) -> tf.data.Dataset:
    """Apply `mixup_mixed_losses` to every `(x, y)` batch of `ds` (after the pipeline's own augmentation).

    `seed` is the run's int seed (or None): each batch gets its own stateless seed from a stream that is
    fresh at every epoch (`tfmood.data.seeds`), so lambdas and partners never repeat across batches or epochs.
    """
    # Zipping onto the endless seed stream keeps `ds`'s length (and Keras' known epoch size).
    ds = seeds.with_seeds(ds, seed, seeds.STREAM_MIXED_LOSS)
    ds = ds.map(lambda s, x, y: mixup_mixed_losses(x, y, alpha, s), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


@keras.saving.register_keras_serializable(package="tfmood")
class MixedLoss(keras.losses.Loss):
    """`lam * L(scores, y_a) + (1 - lam) * L(scores, y_b)` per sample, from packed targets `[y_a | y_b | lam]`.

    For BCE this equals BCE on the mixed targets (BCE is linear in the target); for the focal losses it does
    not, which is why CP-JKU mixes losses rather than labels.
    """

    def __init__(self, base, reduction="sum_over_batch_size", name=None):
        base = keras.losses.get(base) if isinstance(base, (str, dict)) else base
        super().__init__(name=name or f"mixed_{base.name}", reduction=reduction)
        self.base = per_sample(base)

    def call(self, y_true, y_pred):
        y_a, y_b, lam = unpack(ops.cast(y_true, y_pred.dtype))
        return lam * self.base(y_a, y_pred) + (1.0 - lam) * self.base(y_b, y_pred)

    def get_config(self):
        return {**super().get_config(), "base": keras.saving.serialize_keras_object(self.base)}
