"""The TFRecord schema: one source of truth imported by the writer (`convert`) and the readers.

One record = one whole track. Features are stored band-major, exactly as MTG's `.npy` files
(`[bands, frames]`), as raw little-endian bytes, so a record round-trips bit-exactly and a time crop is
a cheap strided slice. Labels are stored as tag indices (canonical order, `tfmood.tags`).

Why whole tracks: evaluation needs the whole track (N segments per track). Training does not read the
records directly: it reads crops from a random-access frame store derived from them once
(`framestore.py`), since a record cannot be read in part.
"""

import numpy as np
import tensorflow as tf

from tfmood.tags import NUM_TAGS

SCHEMA_VERSION = 1
STORAGE_DTYPES = ("float32", "float16")

FEATURES = {
    "track_id": tf.io.FixedLenFeature([], tf.int64),
    "labels": tf.io.VarLenFeature(tf.int64),
    "bands": tf.io.FixedLenFeature([], tf.int64),
    "frames": tf.io.FixedLenFeature([], tf.int64),
    "features": tf.io.FixedLenFeature([], tf.string),
}


def _int64(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def serialize(track_id: int, label_indices, features: np.ndarray, dtype: str = "float32") -> bytes:
    """Encode one track. `features` is `[bands, frames]`; it is cast to the storage `dtype`."""
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"storage dtype must be one of {STORAGE_DTYPES}. Received: {dtype!r}")
    array = np.ascontiguousarray(features, dtype=np.dtype(dtype).newbyteorder("<"))
    example = tf.train.Example(features=tf.train.Features(feature={
        "track_id": _int64([int(track_id)]),
        "labels": _int64(sorted(int(i) for i in label_indices)),
        "bands": _int64([array.shape[0]]),
        "frames": _int64([array.shape[1]]),
        "features": tf.train.Feature(bytes_list=tf.train.BytesList(value=[array.tobytes()])),
    }))
    return example.SerializeToString(deterministic=True)


def parse(serialized, dtype: str = "float32", num_tags: int = NUM_TAGS):
    """Decode one serialized record (graph-safe, for `Dataset.map`).

    Returns a dict: `track_id` int64 [], `features` float32 [bands, frames], `labels` float32 [num_tags]
    (multi-hot).
    """
    ex = tf.io.parse_single_example(serialized, FEATURES)
    shape = tf.stack([ex["bands"], ex["frames"]])
    feats = tf.reshape(tf.io.decode_raw(ex["features"], tf.dtypes.as_dtype(dtype), little_endian=True), shape)
    labels = tf.sparse.to_dense(ex["labels"])
    # Sum (not max) so a track without tags still gives zeros rather than -inf.
    multi_hot = tf.minimum(tf.reduce_sum(tf.one_hot(labels, num_tags, dtype=tf.float32), axis=0), 1.0)
    return {"track_id": ex["track_id"], "features": tf.cast(feats, tf.float32), "labels": multi_hot,
            "label_indices": labels}


def decode_numpy(serialized: bytes, dtype: str = "float32"):
    """Pure-numpy decode for tools and tests: (track_id, label_indices, features[bands, frames])."""
    ex = tf.train.Example.FromString(serialized)
    f = ex.features.feature
    bands, frames = f["bands"].int64_list.value[0], f["frames"].int64_list.value[0]
    feats = np.frombuffer(f["features"].bytes_list.value[0], dtype=np.dtype(dtype).newbyteorder("<"))
    return (int(f["track_id"].int64_list.value[0]), list(f["labels"].int64_list.value),
            feats.reshape(bands, frames))


def shard_name(split: str, index: int, num_shards: int) -> str:
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


def decode_header(serialized: bytes):
    """(track_id, label_indices, frames) without touching the feature bytes (for inspection)."""
    f = tf.train.Example.FromString(serialized).features.feature
    return (int(f["track_id"].int64_list.value[0]), list(f["labels"].int64_list.value),
            int(f["frames"].int64_list.value[0]))
