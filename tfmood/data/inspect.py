"""Read converted records back: per-split track counts and per-tag counts from the records themselves."""

import numpy as np

from tfmood.data import convert, schema
from tfmood.tags import NUM_TAGS, TAGS


def inspect_records(records_dir: str, dtype: str = None) -> dict:
    """Count tracks, frames and tags per split by decoding every record of the shards the manifest lists.

    An unfinished conversion (shards, no manifest) raises `convert.UnfinishedConversion`; a missing, truncated
    or corrupted shard raises `convert.DamagedRecords` naming it.
    """
    import tensorflow as tf

    manifest = convert.read_manifest(records_dir)
    out = {}
    for split in manifest["splits"]:
        s = out.setdefault(split, {"tracks": 0, "frames": 0, "tag_counts": np.zeros(NUM_TAGS, int),
                                   "track_ids": set()})
        for path in convert.shard_paths(records_dir, split, manifest):
            try:
                for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                    track_id, labels, frames = schema.decode_header(record)
                    s["tracks"] += 1
                    s["frames"] += frames
                    s["tag_counts"][labels] += 1
                    s["track_ids"].add(track_id)
            except tf.errors.DataLossError as e:
                raise convert.DamagedRecords(
                    f"Shard {path} is corrupted ({e.message.splitlines()[0]}). Re-run the same "
                    "`python tools/convert.py` command to rewrite it.") from None
    return {split: {"tracks": s["tracks"], "unique_tracks": len(s["track_ids"]), "frames": s["frames"],
                    "tag_counts": dict(zip(TAGS, s["tag_counts"].tolist()))} for split, s in sorted(out.items())}
