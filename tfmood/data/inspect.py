"""Read converted records back: per-split track counts and per-tag counts from the records themselves."""

import glob
import os

import numpy as np

from tfmood.data import schema
from tfmood.tags import NUM_TAGS, TAGS


def inspect_records(records_dir: str, dtype: str = None) -> dict:
    """Count tracks, frames and tags per split by decoding every record (not by trusting the manifest)."""
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(records_dir, "*-of-*.tfrecord")))
    if not files:
        raise FileNotFoundError(f"No *.tfrecord shards in {records_dir!r}.")
    out = {}
    for path in files:
        split = os.path.basename(path).rsplit("-", 3)[0]
        s = out.setdefault(split, {"tracks": 0, "frames": 0, "tag_counts": np.zeros(NUM_TAGS, int),
                                   "track_ids": set()})
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            track_id, labels, frames = schema.decode_header(record)
            s["tracks"] += 1
            s["frames"] += frames
            s["tag_counts"][labels] += 1
            s["track_ids"].add(track_id)
    return {split: {"tracks": s["tracks"], "unique_tracks": len(s["track_ids"]), "frames": s["frames"],
                    "tag_counts": dict(zip(TAGS, s["tag_counts"].tolist()))} for split, s in sorted(out.items())}
