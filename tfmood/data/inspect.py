"""Read converted records back: per-split track counts and per-tag counts from the records themselves."""

import re

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
                    f"Shard {path} is corrupted ({_tf_message(e)}). Re-run the same "
                    "`python tools/convert.py` command to rewrite it.") from None
    return {split: {"tracks": s["tracks"], "unique_tracks": len(s["track_ids"]), "frames": s["frames"],
                    "tag_counts": dict(zip(TAGS, s["tag_counts"].tolist()))} for split, s in sorted(out.items())}


def explain_data_loss(records_dir: str, error) -> str:
    """A sentence for TF's anonymous `DataLossError: corrupted record at N`: re-read the manifest's shards one
    by one to name the damaged file (the one place every reader's data-loss error is explained)."""
    try:
        inspect_records(records_dir)
    except (convert.DamagedRecords, OSError) as e:
        return str(e)
    return (f"the records in {records_dir} could not be read ({_tf_message(error)}). Re-run the same "
            "`python tools/convert.py` command to rewrite them.")


def _tf_message(error) -> str:
    """TF's own words without its graph decorations: `{{function_node ...}} corrupted record at 12 [Op:...]`."""
    first = (str(getattr(error, "message", error)).splitlines() or [""])[0]
    return re.sub(r"\s*\[Op:.*$", "", re.sub(r"\{\{[^}]*\}\}\s*", "", first)).strip()
