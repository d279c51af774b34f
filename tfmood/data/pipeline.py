"""tf.data pipelines over converted records: training crops and whole-track evaluation.

Training reads whole tracks but takes *several* crops from each one it reads (one per `crop_frames` of
audio by default, at stratified random offsets), so every stored byte feeds a crop: read amplification
stays near 1x instead of the ~10x of "read a 4-minute track, keep 20 seconds". Augmentation runs on whole
batches. Evaluation never shuffles and never drops a track, and yields tracks in split-TSV order.
"""


import numpy as np
import tensorflow as tf

from tfmood.data import augment, recipe_augment, schema, seeds
from tfmood.data.convert import read_manifest, shard_paths
from tfmood.protocol import Protocol

AUTOTUNE = tf.data.AUTOTUNE


def list_shards(records_dir: str, split: str) -> list:
    """The split's shards in index order, from the manifest: never a glob, which would also read stale shards
    of an earlier --num-shards and a split named `train-extra` as part of `train`."""
    return shard_paths(records_dir, split)


def crops_per_epoch(track_frames, crop_frames, crops_per_track=None) -> int:
    """How many crops one epoch yields (the same rule as `_crops`)."""
    if crops_per_track:
        return crops_per_track * len(track_frames)
    return sum(max(1, (f + crop_frames // 2) // crop_frames) for f in track_frames)


def _crops(seed, record, dtype, crop_frames, crops_per_track):
    """One parsed track -> (`[k, bands, crop]` crops, `[k, 56]` labels); `seed`: this track's stateless seed."""
    track = schema.parse(record, dtype)
    frames = tf.shape(track["features"])[1]
    if crops_per_track:
        count = tf.constant(crops_per_track)
    else:  # one crop per crop_frames of audio: each byte read is used about once
        count = tf.maximum(1, (frames + crop_frames // 2) // crop_frames)
    x = augment.random_crop(track["features"], crop_frames, count, seed)
    return x, tf.repeat(track["labels"][None], count, axis=0)


def train_dataset(records_dir, split="train", batch_size=32, crop_frames=960, crops_per_track=None,
                  shuffle_buffer=1024, spec_augment=True, mixup_alpha=0.0, label_balancing=False,
                  seed=None, deterministic=False, crop_transforms=()):
    """Batches `(x [batch, bands, crop, 1], y [batch, 56])` for one epoch of training.

    `crop_transforms`: recipe transforms (`tfmood.data.recipe_augment` specs) run on each batch before SpecAugment.
    """
    if crop_frames < 1:
        raise ValueError(f"crop_frames must be >= 1. Received: {crop_frames}")
    manifest = read_manifest(records_dir)
    shards = list_shards(records_dir, split)
    files = tf.data.Dataset.from_tensor_slices(shards)
    files = files.shuffle(len(shards), seed=seeds.stream_seed(seed, seeds.SHUFFLE_SHARDS))
    # Read several shards at once so consecutive tracks come from all over the dataset.
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=min(8, len(shards)),
                          num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    # Static band and crop sizes in the element spec: models that normalise per band (BatchNormalization on
    # axis 1, as CP-JKU's and Choi's) or cut segments need them when fit() traces the train step.
    static = [None, int(manifest["bands"]), crop_frames]
    # Every track and every batch gets its own seed, from streams that restart differently at each epoch
    # (Keras re-iterates the dataset per epoch): fresh draws, reproducible from `seed` (tfmood.data.seeds).
    ds = seeds.with_seeds(ds, seed, seeds.STREAM_TRACKS)
    ds = ds.map(lambda s, r: _crops(s, r, manifest["dtype"], crop_frames, crops_per_track),
                num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.map(lambda x, y: (tf.ensure_shape(x, static), y))
    # Crops of one track arrive together: the crop-level shuffle buffer spreads them across batches.
    ds = ds.unbatch().shuffle(shuffle_buffer, seed=seeds.stream_seed(seed, seeds.SHUFFLE_CROPS))
    if label_balancing:
        counts = [manifest["splits"][split]["tag_counts"][t] for t in manifest["tags"]]
        ds = ds.map(lambda x, y: (x, augment.rarest_tag(y, counts)), num_parallel_calls=AUTOTUNE)
    # Full batches only: every replica step sees the same global batch size. Copying crops into a batch is
    # a large share of the pipeline's work: parallel batching measured +41% crops/s (BENCHMARKS.md).
    ds = ds.batch(batch_size, drop_remainder=True, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    frames = manifest["splits"][split].get("track_frames")
    if frames:  # a known epoch length gives Keras a progress total and no "ran out of data" warnings
        steps = crops_per_epoch(frames, crop_frames, crops_per_track) // batch_size
        ds = ds.apply(tf.data.experimental.assert_cardinality(steps))
    ds = seeds.with_seeds(ds, seed, seeds.STREAM_BATCHES)
    transforms = recipe_augment.build(crop_transforms)
    ds = ds.map(lambda s, x, y: _augment_batch(x, y, spec_augment, mixup_alpha, s, transforms),
                num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return ds.prefetch(AUTOTUNE)


def _augment_batch(x, y, spec_augment, mixup_alpha, seed, transforms=()):
    """Recipe transforms, SpecAugment, then mixup on one batch; `seed` is the batch's stateless seed (each
    folds its own purpose)."""
    x, y = recipe_augment.apply(x, y, seed, transforms)
    if spec_augment:
        x = augment.spec_augment(x, seed=seed, **(spec_augment if isinstance(spec_augment, dict) else {}))
    if mixup_alpha:
        x, y = augment.mixup(x, y, mixup_alpha, seed)
    return x[..., None], y


def eval_dataset(records_dir, split="validation", crop_frames=960, segments=16):
    """Per track, in split-TSV order: `{"track_id", "segments" [segments, bands, crop, 1], "labels"}`.

    The segments are the scoring protocol's crops (tfmood.protocol.Protocol.crops, the implementation the
    exported model's signatures and `python -m tfmood.predict` use too).

    Shards hold tracks round-robin (track i in shard i % n), so a deterministic interleave with
    block_length 1 over the shards in index order restores the TSV order.
    """
    protocol = Protocol(int(crop_frames), int(segments))
    manifest = read_manifest(records_dir)
    shards = list_shards(records_dir, split)
    ds = tf.data.Dataset.from_tensor_slices(shards).interleave(
        tf.data.TFRecordDataset, cycle_length=len(shards), block_length=1)

    def to_segments(record):
        track = schema.parse(record, manifest["dtype"])
        x = protocol.crops(track["features"][None])[0]
        return {"track_id": track["track_id"], "segments": x[..., None], "labels": track["labels"]}

    return ds.map(to_segments, num_parallel_calls=AUTOTUNE, deterministic=True)


def predict_tracks(model, records_dir, split="validation", crop_frames=960, segments=16, batch_size=32):
    """Score every track of `split`: mean of the model's scores over `segments` evenly spaced crops.

    `model` is a Keras model or any callable mapping `[n, bands, crop, 1]` to `[n, 56]` scores.
    Returns `(track_ids [n], scores [n, 56] float32, labels [n, 56] bool)` in split-TSV order.
    """
    tracks_per_batch = max(1, batch_size // segments)
    ds = eval_dataset(records_dir, split, crop_frames, segments).batch(tracks_per_batch).prefetch(AUTOTUNE)
    call = model.predict_on_batch if hasattr(model, "predict_on_batch") else model
    ids, scores, labels = [], [], []
    for batch in ds:
        x = batch["segments"]
        flat = tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))
        s = np.asarray(call(flat), np.float32).reshape(x.shape[0], segments, -1)
        scores.append(s.mean(axis=1))
        ids.append(batch["track_id"].numpy())
        labels.append(batch["labels"].numpy() > 0.5)
    if not ids:
        raise ValueError(f"No tracks in split {split!r} of {records_dir!r}.")
    return np.concatenate(ids), np.concatenate(scores), np.concatenate(labels)
