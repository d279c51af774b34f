"""Random seeds for the input pipeline: fresh per element and per epoch, reproducible from one `--seed`.

Why not `tf.random.*(seed=seed)` inside `Dataset.map`: two stateful ops given the same explicit seed in one
traced function produce *identical* streams (so two gammas gave Beta draws of exactly 0.5), and each new
iterator restarts their state (Keras `fit` re-iterates the dataset every epoch, so every epoch replayed
epoch 0's crops and masks). Instead:

- every draw is a stateless op (`tf.random.stateless_*`) whose seed is derived from a per-element seed and a
  fixed *purpose* number (`fold_in`), so two purposes never share a stream;
- element seeds come from `Dataset.random(rerandomize_each_iteration=True)` (a fresh stream at every
  iteration, i.e. epoch; the same streams run to run for a given `seed`; `seed=None`: non-deterministic
  unless a global seed is set): the training plan takes one per epoch and derives each batch's seed from it
  (`stateless_split`), `losses.mixed_loss_batches` zips one onto each batch.
"""

import os

import tensorflow as tf

# Purposes: one number per kind of draw, folded into the element's seed. Never reuse a number
# (1-99 here; other modules take their own ranges, e.g. recipe_augment 100+).
CROP, SPEC_FREQ_WIDTH, SPEC_FREQ_START, SPEC_TIME_WIDTH, SPEC_TIME_START, SPEC_APPLY = range(1, 7)
MIX_GAMMA_A, MIX_GAMMA_B, MIX_PERM = range(7, 10)
PLAN_ORDER, PLAN_BATCHES = range(10, 12)
# Streams: one per place in the pipeline that draws seeds (each gets its own `Dataset.random` seed). The
# training plan takes one seed per epoch and derives everything else (offsets, order, batch seeds) from it.
STREAM_MIXED_LOSS, STREAM_PLAN = 3, 4

_MAX = 2 ** 31 - 1


def stream_seed(seed, stream: int):
    """The `Dataset.random` seed of `stream` under the run's `seed` (None stays None: fresh each run)."""
    if seed is None:
        return None
    return (int(seed) * 1_000_003 + stream * 7_919) % (2 ** 63 - 1)


def stream(seed, stream_id: int) -> tf.data.Dataset:
    """An endless dataset of stateless seeds `[2] int64`, a new sequence at every iteration."""
    rand = tf.data.Dataset.random(seed=stream_seed(seed, stream_id), rerandomize_each_iteration=True)
    return rand.map(lambda r: tf.stack([r, tf.constant(stream_id, tf.int64)]))


def with_seeds(ds: tf.data.Dataset, seed, stream_id: int) -> tf.data.Dataset:
    """`(seed_pair, *element)` for each element of `ds` (element tuples are flattened after the seed)."""
    return tf.data.Dataset.zip((stream(seed, stream_id), ds)).map(
        lambda s, e: (s, *e) if isinstance(e, tuple) else (s, e))


def resolve(seed):
    """A stateless seed `[2]` from `seed`: a `[2]` tensor as is, an int as `[seed, 0]`, None as a fresh draw.

    A fixed seed gives the same draws at every call (the stateless contract): the pipeline passes a new seed
    per element. None draws one from the stateful generator, fresh at every call (eager or traced).
    """
    if seed is None:
        return tf.random.uniform([2], 0, _MAX, tf.int32)
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int64)
    return seed


def derive(seed, purpose: int):
    """The seed for one `purpose` (see the constants above) of the element seeded by `seed`."""
    return tf.random.experimental.stateless_fold_in(resolve(seed), purpose)


def fixed(seed, stream_id: int):
    """A constant stateless seed `[2] int64` for `stream_id` under the run's `seed`, for a dataset whose
    iterations must not draw their own (a tf.data service worker re-creates the dataset at each iteration);
    None draws one here, once, so every worker of the run shares it."""
    value = stream_seed(seed, stream_id)
    if value is None:
        value = int.from_bytes(os.urandom(7), "little")
    return tf.constant([value, stream_id], tf.int64)


def epoch_seed(base, epoch):
    """Epoch `epoch`'s seed under the constant seed `base` (`fixed`): a pure function of both."""
    return tf.random.experimental.stateless_fold_in(base, tf.cast(epoch, tf.int64))
