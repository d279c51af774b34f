"""Per-band standardisation from training-set statistics (CP-JKU, systems.md A5: `(x - mean) / std` with the mean
and standard deviation of each mel bin over every frame of the training set, shape (1, bands, 1)).

    mean, std = band_stats.load_or_compute("records/jamendo-mel")   # computed once, cached in band_stats.json
    model = band_stats.standardized(model, mean, std)                # a fixed input layer in front of `model`

The statistics are computed once per converted dataset and stored beside its manifest (`band_stats.json`,
written atomically), tagged with the manifest's SHA-256: a re-converted dataset gets fresh ones. They become a
non-trainable `Normalization` layer at the model's input, so evaluation, the exported SavedModel and serving
all standardise exactly as training did, with no separate file to carry along.
"""

import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from tfmood.data import schema
from tfmood.data.convert import MANIFEST, read_manifest

STATS_FILE = "band_stats.json"


def _manifest_digest(records_dir: str) -> str:
    with open(os.path.join(records_dir, MANIFEST), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def compute(records_dir: str, split: str = "train"):
    """`(mean, std, frames)` of every band over all frames of `split`, accumulated in float64."""
    from tfmood.data.pipeline import list_shards

    manifest = read_manifest(records_dir)
    bands = int(manifest["bands"])
    total, total_sq, frames = np.zeros(bands), np.zeros(bands), 0
    ds = tf.data.TFRecordDataset(list_shards(records_dir, split)).map(
        lambda r: schema.parse(r, manifest["dtype"])["features"], num_parallel_calls=tf.data.AUTOTUNE)
    for features in ds.as_numpy_iterator():
        features = features.astype(np.float64)
        total += features.sum(axis=1)
        total_sq += np.square(features).sum(axis=1)
        frames += features.shape[1]
    if frames == 0:
        raise ValueError(f"No frames in the {split!r} split of {records_dir!r}: cannot compute band statistics.")
    mean = total / frames
    std = np.sqrt(np.maximum(total_sq / frames - np.square(mean), 0.0))
    return mean, std, frames


def load_or_compute(records_dir: str, split: str = "train", verbose: bool = True):
    """`(mean, std)` `[bands]` float64 of `split`: from `band_stats.json` when it matches the manifest, else
    computed now and stored there (atomically; a read-only dataset folder just skips the cache)."""
    from tfmood.evaluation.files import save_json

    path = os.path.join(records_dir, STATS_FILE)
    digest = _manifest_digest(records_dir)
    if os.path.exists(path):
        try:
            with open(path) as f:
                cached = json.load(f)
            if cached.get("manifest_sha256") == digest and cached.get("split") == split:
                return np.asarray(cached["mean"]), np.asarray(cached["std"])
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache is recomputed below
    if verbose:
        print(f"Computing per-band statistics of the {split!r} split of {records_dir} (once).", flush=True)
    mean, std, frames = compute(records_dir, split)
    try:
        save_json(path, {"split": split, "frames": int(frames), "manifest_sha256": digest,
                         "mean": mean.tolist(), "std": std.tolist()})
    except OSError as e:
        print(f"Note: could not cache band statistics in {path} ({e}); they will be recomputed next time.")
    return mean, std


def standardized(model: keras.Model, mean, std, epsilon: float = 1e-8) -> keras.Model:
    """`model` behind a fixed `(x - mean) / std` per band (axis 1 of `[batch, bands, frames, 1]`)."""
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if mean.shape != std.shape or mean.ndim != 1 or model.input_shape[1] != mean.shape[0]:
        raise ValueError(f"Band statistics for {mean.shape} bands do not fit a model input {model.input_shape}.")
    inputs = keras.Input(shape=model.input_shape[1:], name="features")
    norm = keras.layers.Normalization(axis=1, mean=mean, variance=np.square(np.maximum(std, epsilon)),
                                      name="band_standardization")
    return keras.Model(inputs, model(norm(inputs)), name=f"{model.name}_standardized")


def standardize_model(model: keras.Model, cfg, records_dir: str) -> keras.Model:
    """`standardized(model, ...)` with the statistics of `records_dir`'s training split (`cfg.standardize`)."""
    if cfg.peer or hasattr(model, "branches"):
        raise ValueError("`standardize='bands'` wraps a single-output model; co-teaching pairs and two-branch "
                         f"taggers are not supported. Received: model={cfg.model!r}, peer={cfg.peer!r}.")
    mean, std = load_or_compute(records_dir, "train", verbose=cfg.verbose > 0)
    return standardized(model, mean, std)
