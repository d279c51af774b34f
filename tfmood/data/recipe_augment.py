"""Crop-level training transforms that single recipes need, as the originals coded them.

    cfg.crop_transforms = [{"name": "random_resized_crop", "probability": 0.33}]   # AMLAG, SELAB, HCMUS
    cfg.crop_transforms = [{"name": "time_roll", "max_shift": 50}]                  # CP-JKU

Each transform (a `Transform`: draws, then their application) maps a training batch
`(x [batch, bands, frames], y, seed)` to `(x, y)` and runs in the training
pipeline after cropping and before SpecAugment (`pipeline.train_dataset(crop_transforms=...)`). Every draw is a
stateless op seeded from the batch's seed (`tfmood.data.seeds`) folded with a purpose number of this module
(100 and up, apart from the pipeline's own), so the draws are fresh per example and per epoch and reproducible
from `--seed`. Evaluation never sees them.

- `time_roll` (CP-JKU, cpjku_dcase19 datasets.py `get_roll_func`): each example is rolled circularly along time
  by an integer drawn uniformly from [-max_shift, max_shift] (numpy `random_integers`, both ends included).
- `random_resized_crop` (AMLAG / SELAB / HCMUS `RandomResizedCrop(scale=(0.8, 1.0), ratio=(1.7, 2.3))` under
  `UseWithProb(p=.33)`; torchvision's sampling rule, systems.md B1): with `probability`, up to 10 attempts draw an
  area share from `scale` and a log-uniform aspect (width / height = frames / bands) from `ratio`; the first box
  that fits is taken at a uniform position. When none fits, the fallback is a central box: full height and
  width `round(height * max(ratio))` when the crop is wider than `max(ratio)` (a 96 x 4096 crop: always, a
  central 96 x 221 box), full width and height `round(width / min(ratio))` when narrower than `min(ratio)`.
  The box is resized back to the crop's size by bilinear interpolation with half-pixel centres (OpenCV's
  `INTER_LINEAR`, PyTorch's `align_corners=False`), clamping at the box's edges.
"""

import math

import tensorflow as tf

from tfmood.data import seeds
from tfmood.registry import Registry

TRANSFORMS = Registry("crop transform")

# Purposes (see tfmood.data.seeds): this module's numbers start at 100 so they never meet the pipeline's.
ROLL_SHIFT, RRC_APPLY, RRC_SCALE, RRC_RATIO, RRC_TOP, RRC_LEFT = range(100, 106)


class Transform:
    """A crop transform split as SpecAugment and mixup are (`tfmood.data.augment`): `draw` makes its per-example
    draws (small, uncompiled, stateless from the seed), `apply` applies them to a batch (compiled; row by row,
    so the rows of a batch may be drawn on one machine and applied on another: `tfmood.data.deferred`).
    Calling it does both: `(x, y, seed) -> (x, y)`."""

    def draw(self, batch, bands, frames, seed) -> dict:
        raise NotImplementedError

    def apply(self, x, draws):
        raise NotImplementedError

    def __call__(self, x, y, seed):
        shape = tf.shape(x)
        return self.apply(x, self.draw(shape[0], shape[1], shape[2], seed)), y


class _TimeRoll(Transform):
    def __init__(self, max_shift):
        self.max_shift = max_shift

    def draw(self, batch, bands, frames, seed):
        shift = tf.random.stateless_uniform([batch], seeds.derive(seed, ROLL_SHIFT), -self.max_shift,
                                            self.max_shift + 1, tf.int32)
        return {"shift": shift}

    def apply(self, x, draws):
        return _roll(x, draws["shift"])


@TRANSFORMS.register("time_roll")
def time_roll(max_shift=50):
    """CP-JKU: roll each example circularly in time by an integer in [-max_shift, max_shift]."""
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"time_roll: `max_shift` must be an integer >= 0. Received: {max_shift!r}")
    return _TimeRoll(max_shift)


def roll_by(x, shift):
    """Each example of `x [batch, bands, frames]` rolled along time by its `shift`: out[t] = x[(t - shift) mod
    frames], as torch.roll(x, shift) does."""
    frames = tf.shape(x)[2]
    source = tf.math.floormod(tf.range(frames)[None, :] - shift[:, None], frames)
    return tf.gather(x, source, axis=2, batch_dims=1)


@TRANSFORMS.register("random_resized_crop")
def random_resized_crop(probability=0.33, scale=(0.8, 1.0), ratio=(1.7, 2.3), attempts=10):
    """AMLAG / SELAB / HCMUS: with `probability`, a torchvision-style random resized crop (see the module doc)."""
    if not 0 <= probability <= 1:
        raise ValueError(f"random_resized_crop: `probability` must be in [0, 1]. Received: {probability!r}")
    if not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1 and len(ratio) == 2 and 0 < ratio[0] <= ratio[1]):
        raise ValueError(f"random_resized_crop: needs 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1]. "
                         f"Received: scale={scale!r}, ratio={ratio!r}")

    return _RandomResizedCrop(probability, scale, ratio, attempts)


class _RandomResizedCrop(Transform):
    def __init__(self, probability, scale, ratio, attempts):
        self.probability, self.scale, self.ratio, self.attempts = probability, scale, ratio, attempts

    def draw(self, batch, bands, frames, seed):
        top, left, height, width = crop_boxes((batch, bands, frames), seed, self.scale, self.ratio,
                                              self.attempts)
        apply = tf.random.stateless_uniform([batch], seeds.derive(seed, RRC_APPLY)) < self.probability
        return {"top": top, "left": left, "height": height, "width": width, "apply": apply}

    def apply(self, x, draws):
        boxes = tuple(draws[k] for k in ("top", "left", "height", "width"))
        return _resize_where(x, boxes, draws["apply"])


def crop_boxes(shape, seed, scale, ratio, attempts=10):
    """torchvision `RandomResizedCrop.get_params` for every example: `(top, left, height, width)` int32 `[batch]`."""
    batch, bands, frames = shape[0], shape[1], shape[2]
    h_img, w_img = tf.cast(bands, tf.float32), tf.cast(frames, tf.float32)
    area = h_img * w_img
    share = tf.random.stateless_uniform([batch, attempts], seeds.derive(seed, RRC_SCALE), scale[0], scale[1])
    log_ratio = tf.random.stateless_uniform([batch, attempts], seeds.derive(seed, RRC_RATIO),
                                            math.log(ratio[0]), math.log(ratio[1]))
    aspect = tf.exp(log_ratio)
    # torchvision rounds half to even (Python's round); tf.round does the same
    w = tf.cast(tf.round(tf.sqrt(area * share * aspect)), tf.int32)
    h = tf.cast(tf.round(tf.sqrt(area * share / aspect)), tf.int32)
    fits = (w > 0) & (w <= frames) & (h > 0) & (h <= bands)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)  # first fitting attempt
    found = tf.reduce_any(fits, axis=1)
    h_try, w_try = tf.gather(h, first, batch_dims=1), tf.gather(w, first, batch_dims=1)
    u_top = tf.random.stateless_uniform([batch], seeds.derive(seed, RRC_TOP))
    u_left = tf.random.stateless_uniform([batch], seeds.derive(seed, RRC_LEFT))
    top_try = tf.cast(u_top * tf.cast(bands - h_try + 1, tf.float32), tf.int32)   # randint(0, H - h)
    left_try = tf.cast(u_left * tf.cast(frames - w_try + 1, tf.float32), tf.int32)
    # Fallback: a central box of the nearest allowed aspect (the whole crop when its aspect is allowed).
    in_ratio = w_img / h_img
    h_fb = tf.where(in_ratio < ratio[0], tf.cast(tf.round(w_img / ratio[0]), tf.int32), bands)
    w_fb = tf.where(in_ratio > ratio[1], tf.cast(tf.round(h_img * ratio[1]), tf.int32), frames)
    h_fb, w_fb = tf.minimum(h_fb, bands), tf.minimum(w_fb, frames)
    top_fb, left_fb = (bands - h_fb) // 2, (frames - w_fb) // 2
    return tuple(tf.where(found, a, b) for a, b in
                 ((top_try, top_fb), (left_try, left_fb), (h_try, h_fb), (w_try, w_fb)))


def _axis_weights(start, size, out_size):
    """Half-pixel bilinear sampling of `out_size` points over `[start, start + size)` for each example:
    (lower index, upper index, upper weight), each `[batch, out_size]`."""
    # float64 positions: in float32 the interpolation weights of a 4096-wide axis drift by ~1e-5
    scale = tf.cast(size, tf.float64) / tf.cast(out_size, tf.float64)
    pos = (tf.cast(tf.range(out_size), tf.float64)[None, :] + 0.5) * scale[:, None] - 0.5
    pos = tf.clip_by_value(pos, 0.0, tf.cast(size - 1, tf.float64)[:, None])
    low = tf.floor(pos)
    frac = pos - low
    low = tf.cast(low, tf.int32)
    high = tf.minimum(low + 1, (size - 1)[:, None])
    return start[:, None] + low, start[:, None] + high, frac


def resize_boxes(x, top, left, height, width):
    """Each example's box `[top:top+height, left:left+width]` of `x [batch, bands, frames]`, resized bilinearly
    (half-pixel centres) back to `[bands, frames]`."""
    bands, frames = tf.shape(x)[1], tf.shape(x)[2]
    r0, r1, fr = _axis_weights(top, height, bands)
    c0, c1, fc = _axis_weights(left, width, frames)
    dtype = x.dtype
    fr, fc = tf.cast(fr, dtype)[:, :, None], tf.cast(fc, dtype)[:, None, :]
    rows0, rows1 = tf.gather(x, r0, axis=1, batch_dims=1), tf.gather(x, r1, axis=1, batch_dims=1)
    mix_rows = rows0 + (rows1 - rows0) * fr                                   # [batch, bands, frames]
    left_cols = tf.gather(mix_rows, c0, axis=2, batch_dims=1)
    right_cols = tf.gather(mix_rows, c1, axis=2, batch_dims=1)
    return left_cols + (right_cols - left_cols) * fc


def resize_where(x, boxes, apply):
    """The examples of `x` where `apply`, resized from their `boxes` (`crop_boxes`); the others as they are."""
    return tf.where(apply[:, None, None], resize_boxes(x, *boxes), x)


# Why compiled: op by op, the per-example gathers and blends of both transforms make several passes over the
# batch (a 32 x 96 x 960 resize: 35 CPU-ms op by op, 12 compiled, BENCHMARKS.md). The draws stay outside
# (XLA's stateless random ops draw other values). Compiling changes the bilinear blend by float rounding
# only (fused multiply-add); the roll is a copy, bit for bit the same.
_roll = tf.function(roll_by, jit_compile=True)
_resize_where = tf.function(resize_where, jit_compile=True)


def check(specs) -> None:
    """Validate `crop_transforms` specs (a list of `{"name": ..., **options}`) with messages naming the field."""
    build(specs)


def build(specs) -> list:
    """The transform functions of `specs`, in order."""
    if not isinstance(specs, (list, tuple)):
        raise ValueError(f"`crop_transforms` must be a list of {{'name': ..., options}} dicts. Received: {specs!r}")
    fns = []
    for spec in specs:
        if not isinstance(spec, dict) or "name" not in spec:
            raise ValueError(f"`crop_transforms` entries need a 'name' ({', '.join(TRANSFORMS.names())}). "
                             f"Received: {spec!r}")
        options = {k: v for k, v in spec.items() if k != "name"}
        try:
            fns.append(TRANSFORMS.get(spec["name"])(**options))
        except TypeError as e:
            raise ValueError(f"`crop_transforms` {spec['name']!r}: {e}") from None
    return fns


def draw(fns, batch, bands, frames, seed) -> list:
    """Every transform's draws for one batch, in order; each gets its own seed (folded from the batch seed by
    its position)."""
    return [fn.draw(batch, bands, frames, seeds.derive(seed, 1000 + i)) for i, fn in enumerate(fns)]


def apply_drawn(x, fns, draws):
    """Run `fns` in order on `x [batch, bands, frames]` with their `draws` (`draw`)."""
    for fn, d in zip(fns, draws):
        x = fn.apply(x, d)
    return x

