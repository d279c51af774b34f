"""Spectrogram augmentations as graph-safe TF ops on batches `[batch, bands, frames]`.

All of them work eagerly and inside `Dataset.map` (tests check both). They run on whole batches
(vectorised) because per-example maps are the throughput bottleneck on a 2-core CPU. SpecAugment and mixup
are each a *draw* (small: masks, lambdas, partners) and an *apply* (the passes over the batch); the training
pipeline draws, then applies both in one XLA-compiled function (`fused_apply`).

Random draws are stateless (`tfmood.data.seeds`): `seed` is a `[2]` stateless seed (the pipeline passes a
fresh one per track or batch), an int (the same draws at every call), or None (fresh draws at every call).
Each kind of draw folds its own purpose into the seed, so no two share a stream.
"""

import tensorflow as tf

from tfmood.data import seeds


def random_crop(features, crop_frames: int, count, seed=None):
    """`count` crops of `crop_frames` from one track `[bands, frames]` -> `[count, bands, crop_frames]`.

    Short tracks are first padded by repeating them (as the seeds do). Offsets are stratified: crop k
    starts uniformly inside the k-th of `count` equal spans, so the crops cover the whole track.
    """
    features = tile_to_length(features, crop_frames)
    frames = tf.shape(features)[1]
    u = tf.random.stateless_uniform([count], seeds.derive(seed, seeds.CROP))
    return crops_at(features, stratified_starts(frames, crop_frames, tf.range(count), count, u), crop_frames)


def stratified_starts(frames, crop_frames: int, k, count, u):
    """Start of crop `k` of `count` in a track of `frames` (after tiling): uniform inside the k-th of `count`
    equal spans of the valid starts, from `u` ~ U[0, 1). Elementwise; shared by `random_crop` and the
    training plan (`pipeline.train_dataset`), so both sample offsets by one rule."""
    room = frames - crop_frames + 1
    span = tf.cast(room, tf.float32) / tf.cast(count, tf.float32)
    starts = tf.cast((tf.cast(k, tf.float32) + u) * span, tf.int32)
    return tf.minimum(starts, room - 1)


def crops_at(features, starts, crop_frames: int):
    """`[len(starts), bands, crop_frames]` windows of `[bands, frames]` starting at `starts`.

    One strided slice per window: 4x faster than a gather along the time axis, which copies scalar by
    scalar (measured 23,600 vs 5,700 crops/s for 96x960 crops of a 10,400-frame track).
    """
    return tf.map_fn(lambda s: tf.slice(features, [0, s], [-1, crop_frames]), starts,
                     fn_output_signature=features.dtype)


def tile_to_length(features, min_frames: int):
    """Repeat a `[bands, frames]` track along time until it has at least `min_frames` frames."""
    frames = tf.shape(features)[1]
    reps = (min_frames + frames - 1) // frames
    return tf.cond(frames < min_frames, lambda: tf.tile(features, [1, reps]), lambda: features)


def evenly_spaced_segments(features, crop_frames: int, segments: int):
    """`segments` evenly spaced crops `[segments, bands, crop]` covering the track (evaluation): the
    scoring protocol's crops (tfmood.protocol, the one implementation) of a single track."""
    from tfmood.protocol import Protocol

    return Protocol(int(crop_frames), int(segments)).crops(features[None])[0]


def _band_masks(batch, size, num_masks, max_width, width_seed, start_seed):
    """[batch, size] bool: `num_masks` random bands per example, width ~ U{0..max_width}, then
    start ~ U{0..size - width}."""
    positions = tf.range(size)[None, None, :]
    width = tf.random.stateless_uniform([batch, num_masks, 1], width_seed, 0, max_width + 1, tf.int32)
    # Uniform start in [0, size - width]: scale a uniform float, since TF's int sampler needs scalar bounds.
    room = tf.cast(size - width + 1, tf.float32)
    u = tf.random.stateless_uniform([batch, num_masks, 1], start_seed)
    start = tf.minimum(tf.cast(u * room, tf.int32), size - width)
    return tf.reduce_any((positions >= start) & (positions < start + width), axis=1)


def spec_augment(x, probability=0.7, time_masks=2, freq_masks=2, max_time_fraction=0.15,
                 max_freq_fraction=0.1, seed=None):
    """SpecAugment (HCMUS 2020): with `probability`, mask bands of frequency and time, per example.

    Masked cells take the example's minimum (as AMLAG/SELAB fill with `spec.min()`): in MTG's dB scale the
    minimum is "silence", whereas zero would be a loud value. The draws (`spec_augment_masks`) and their
    application (`apply_masks`) are separate so that the pipeline can run the heavy part fused (`fused_apply`).
    """
    shape = tf.shape(x)
    masks = spec_augment_masks(shape[0], shape[1], shape[2], probability, time_masks, freq_masks,
                               max_time_fraction, max_freq_fraction, seed)
    return apply_masks(x, *masks)


def spec_augment_masks(batch, bands, frames, probability=0.7, time_masks=2, freq_masks=2,
                       max_time_fraction=0.15, max_freq_fraction=0.1, seed=None):
    """SpecAugment's draws for a `[batch, bands, frames]` batch: `(fmask [batch, bands] bool,
    tmask [batch, frames] bool, apply [batch] bool)`; a few KB, whatever the crop size."""
    max_t = tf.cast(tf.cast(frames, tf.float32) * max_time_fraction, tf.int32)
    max_f = tf.cast(tf.cast(bands, tf.float32) * max_freq_fraction, tf.int32)
    seed = seeds.resolve(seed)
    fmask = _band_masks(batch, bands, freq_masks, max_f, seeds.derive(seed, seeds.SPEC_FREQ_WIDTH),
                        seeds.derive(seed, seeds.SPEC_FREQ_START))
    tmask = _band_masks(batch, frames, time_masks, max_t, seeds.derive(seed, seeds.SPEC_TIME_WIDTH),
                        seeds.derive(seed, seeds.SPEC_TIME_START))
    apply = tf.random.stateless_uniform([batch], seeds.derive(seed, seeds.SPEC_APPLY)) < probability
    return fmask, tmask, apply


def apply_masks(x, fmask, tmask, apply, time_major=False):
    """Fill the masked cells of `x [batch, bands, frames]` with each example's minimum: one select over
    the batch, with the mask broadcast from `[batch, bands, 1] | [batch, 1, frames]`. `time_major`: `x` is
    `[batch, frames, bands]` (the same cells, transposed)."""
    fill = tf.reduce_min(x, axis=[1, 2], keepdims=True)
    if time_major:
        cells = apply[:, None, None] & (tmask[:, :, None] | fmask[:, None, :])
    else:
        cells = apply[:, None, None] & (fmask[:, :, None] | tmask[:, None, :])
    return tf.where(cells, fill, x)


def sample_beta(shape, alpha, seed=None):
    """Beta(alpha, alpha) as G_a / (G_a + G_b) from two *independent* Gamma(alpha) draws (TF has no beta
    sampler in core). The gammas need distinct streams: with one shared stream G_a == G_b and lambda is
    always 0.5 (the defect this replaced)."""
    seed = seeds.resolve(seed)
    a = tf.random.stateless_gamma(shape, seeds.derive(seed, seeds.MIX_GAMMA_A), alpha)
    b = tf.random.stateless_gamma(shape, seeds.derive(seed, seeds.MIX_GAMMA_B), alpha)
    # Both gammas can underflow to 0 for small alpha: lambda is then 0.5 rather than NaN.
    total = a + b
    return tf.where(total > 0, a / tf.where(total > 0, total, 1.0), 0.5)


def permutation(n, seed=None):
    """A random permutation of `range(n)` (the mixup partners)."""
    return tf.random.experimental.stateless_shuffle(tf.range(n), seeds.derive(seed, seeds.MIX_PERM))


def mixup(x, y, alpha: float, seed=None):
    """Mixup (Zhang et al. 2018) with mixed targets: per-example lambda ~ Beta(alpha, alpha), partner = a
    random permutation of the batch. Returns (x, y) of the same shapes."""
    lam, perm = mixup_draws(tf.shape(x)[0], alpha, seed)
    return blend(x, lam, perm), blend(y, lam, perm)


def mixup_draws(batch, alpha: float, seed=None):
    """Mixup's draws for a batch: `(lam [batch] float32 ~ Beta(alpha, alpha), perm [batch] int32)`."""
    seed = seeds.resolve(seed)
    return sample_beta([batch], alpha, seed), permutation(batch, seed)


def blend(x, lam, perm):
    """`lam * x + (1 - lam) * x[perm]`, with `lam` broadcast over each example of `x [batch, ...]`."""
    return mix(x, tf.gather(x, perm), lam)


def mix(x, partner, lam):
    """`lam * x + (1 - lam) * partner`, with `lam [batch]` broadcast over each example: mixup's one formula."""
    lx = tf.reshape(tf.cast(lam, x.dtype), [-1] + [1] * (len(x.shape) - 1))
    return lx * x + (1 - lx) * partner


def apply_batch(x, masks=None, mix=None):
    """The bulk of a training batch's augmentation, given its draws: `x [batch, bands, frames]` with
    SpecAugment's `masks` (`spec_augment_masks`) and mixup's `mix` (`mixup_draws`) applied (either None to
    skip it), and a channel axis -> `[batch, bands, frames, 1]`. The same ops in the same order as
    `spec_augment` then `mixup`; `fused_apply` runs them compiled."""
    if masks is not None:
        x = apply_masks(x, *masks)
    if mix is not None:
        x = blend(x, *mix)
    return x[..., None]


# Why compiled: op by op, the minimum, the mask, the select, mixup's gather and its blend each make a pass
# over the 12 MB batch; XLA fuses them into one reduction and one elementwise pass (6.2 -> 2.6 core-ms per
# 32 x 96 x 960 batch, BENCHMARKS.md). The draws stay outside: XLA has no stateless gamma kernel, and a
# draw must not depend on where it runs. (Fusing the pipeline's transpose in as well was slower: the fused
# loops then read the time-major input at a stride, twice.)
fused_apply = tf.function(apply_batch, jit_compile=True)


def rarest_tag(labels, tag_counts):
    """Label balancing (HCMUS/SELAB): keep only the track's tag with the fewest training tracks."""
    counts = tf.cast(tag_counts, tf.float32)
    big = tf.reduce_max(counts) + 1.0
    masked = tf.where(labels > 0, counts, big)
    keep = tf.one_hot(tf.argmin(masked, axis=-1), tf.shape(labels)[-1], dtype=labels.dtype)
    return tf.where(tf.reduce_any(labels > 0, axis=-1, keepdims=True), keep, labels)
