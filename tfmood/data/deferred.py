"""A training batch's augmentation: drawn in the input pipeline, applied there or in the training step.

A batch's augmentation is the recipe's crop transforms, then SpecAugment, then mixup (`augment_batch`). Each
is a *draw* (small stateless tensors from the batch's seed: masks, boxes, shifts, lambdas, partners) and an
*application* (the passes over the batch). The draws are always made in the input pipeline, on the CPU, with
the same ops and seeds wherever the batch is finished. The application runs in one of two places
(`TrainConfig.augment_on`):

- `"pipeline"`: the pipeline yields finished batches `x [n, bands, frames, 1]` float32.
- `"device"`: the pipeline yields *deferred* batches, the raw crops time-major in their storage dtype with
  their draws, and the training step finishes them on the accelerator (`finish`). The input pipeline is left
  with the read and the draws: of the 7.3 CPU-ms a 32 x 96 x 960 batch costs it in `"pipeline"` mode, the
  transpose (3.5) and the application (2.0) move to the accelerator, where they are a few cheap passes over
  data already on it (BENCHMARKS.md "Input pipeline").

A deferred batch is a dict, and every row of it is self-contained, so that a split along its first axis (into
replicas, or a worker's share) is again a deferred batch:

    without mixup  {"crops": [n, frames, bands], "draws": {...: [n, ...]}}
    with mixup     {"crops": ..., "draws": ..., "lam": [n], "partner": {"crops": [n, frames, bands], "draws": ...}}

With mixup, row i of `"partner"` is the row mixup pairs row i with (its crop and its draws), and `lam[i]` their
weight: `finish` augments both and blends them as `augment.blend` blends the finished global batch.
`finish` of a deferred batch equals the batch `"pipeline"` mode yields (the same ops, row by row; mixup's blend
may differ by an ulp where XLA fuses it differently; tests/test_deferred.py).
"""

import tensorflow as tf

from tfmood.data import augment, recipe_augment

MODES = ("auto", "pipeline", "device")


def resolve_mode(mode: str) -> str:
    """`"auto"`: `"device"` where a GPU is present (the step is then nearly free), else `"pipeline"`: on a
    CPU-only machine both run on the same cores, and the pipeline's run in parallel with the step."""
    if mode not in MODES:
        raise ValueError(f"`augment_on` must be one of {', '.join(MODES)}. Received: {mode!r}")
    if mode == "auto":
        return "device" if tf.config.list_physical_devices("GPU") else "pipeline"
    return mode


def draws(batch, bands, frames, seed, transforms=(), spec_augment=True) -> dict:
    """The per-row draws of one batch: the crop transforms' (`"transforms"`, a tuple in their order) and
    SpecAugment's (`"masks"`), each present only when in use. Mixup's are not per row: `augment.mixup_draws`."""
    out = {}
    if transforms:
        out["transforms"] = tuple(recipe_augment.draw(transforms, batch, bands, frames, seed))
    if spec_augment:
        options = spec_augment if isinstance(spec_augment, dict) else {}
        out["masks"] = augment.spec_augment_masks(batch, bands, frames, seed=seed, **options)
    return out


def augment_batch(x, y, seed, transforms=(), spec_augment=True, mixup_alpha=0.0):
    """`"pipeline"` mode: the finished batch `(x [n, bands, frames, 1], y)` of `x [n, bands, frames]` float32."""
    d = draws(*x.shape, seed, transforms, spec_augment)
    x = recipe_augment.apply_drawn(x, transforms, d.get("transforms", ()))
    mix = None
    if mixup_alpha:
        mix = augment.mixup_draws(x.shape[0], mixup_alpha, seed)
        y = augment.blend(y, *mix)
    if "masks" not in d and mix is None:
        return x[..., None], y  # nothing to fuse: compiling would only add a copy of the batch
    return augment.fused_apply(x, d.get("masks"), mix), y


def gather_rows(d, rows):
    """The rows `rows` of every per-row draw in `d` (any nesting)."""
    return tf.nest.map_structure(lambda t: tf.gather(t, rows), d)


def pack(crops, d, lam=None, partner_crops=None, partner_draws=None) -> dict:
    """A deferred batch: `crops` with their per-row draws `d`, and with mixup (`lam [n]`) their partners'."""
    out = {"crops": crops, "draws": d}
    if lam is not None:
        out.update(lam=lam, partner={"crops": partner_crops, "draws": partner_draws})
    return out


def pair(inputs: dict, lam, perm) -> dict:
    """Mix an unmixed deferred batch: row i with row `perm[i]` by `lam[i]` (CP-JKU's mixed losses mix after the
    pipeline, `losses.mixed_loss_batches`)."""
    if "lam" in inputs:
        raise ValueError("This deferred batch is mixed already: mixup in the pipeline and mixed-loss mixup "
                         "do not go together.")
    return pack(inputs["crops"], inputs["draws"], lam, tf.gather(inputs["crops"], perm),
                gather_rows(inputs["draws"], perm))


def is_deferred(x) -> bool:
    return isinstance(x, dict) and "crops" in x


def finish(x, transforms=()):
    """The finished batch `[n, bands, frames, 1]` float32 of a deferred batch `x`; any other `x` as it is."""
    if not is_deferred(x):
        return x
    rows = [(x["crops"], x["draws"])] + ([(x["partner"]["crops"], x["partner"]["draws"])] if "lam" in x else [])
    if transforms:  # written for [n, bands, frames]: transpose first
        rows = [(recipe_augment.apply_drawn(_transposed(c), transforms, d.get("transforms", ())), d) for c, d in rows]
        return _fused_finish(*_masked_pairs(rows), x.get("lam"), time_major=False)
    # Masks and the blend are elementwise: applied time-major, then one transpose (not one per crop of a pair).
    crops = [(tf.cast(c, tf.float32), d) for c, d in rows]
    out = _fused_finish(*_masked_pairs(crops), x.get("lam"), time_major=True)
    return tf.transpose(out, [0, 2, 1])[..., None]


def _transposed(crops):
    # The transpose stays outside the compiled function, as in the pipeline (fused in, it was slower on CPU).
    return tf.transpose(tf.cast(crops, tf.float32), [0, 2, 1])


def _masked_pairs(rows):
    """`(x, masks, partner, partner_masks)` from `[(x, draws)]` or `[(x, draws), (partner, draws)]`."""
    (x, d), *partner = rows
    p, pd = partner[0] if partner else (None, {})
    return x, d.get("masks"), p, pd.get("masks")


def _finish_rows(x, masks=None, partner=None, partner_masks=None, lam=None, time_major=False):
    if masks is not None:
        x = augment.apply_masks(x, *masks, time_major=time_major)
        if partner is not None:
            partner = augment.apply_masks(partner, *partner_masks, time_major=time_major)
    if lam is not None:
        x = augment.mix(x, partner, lam)
    return x if time_major else x[..., None]


_fused_finish = tf.function(_finish_rows, jit_compile=True)


def finisher(crop_transforms=()):
    """`finish` for a run's `crop_transforms` specs (`TrainConfig.crop_transforms`): what the training step and
    SWA's BN pass call on each batch."""
    transforms = recipe_augment.build(crop_transforms)
    return lambda x: finish(x, transforms)


def finished_spec(spec):
    """The element spec `(x, y, ...)` of finished batches for `spec` (the same spec when it is finished)."""
    x, *rest = spec
    if not is_deferred(x):
        return spec
    crops = x["crops"]
    x = tf.TensorSpec([crops.shape[0], crops.shape[-1], crops.shape[-2], 1], tf.float32)
    return (x, *rest)
