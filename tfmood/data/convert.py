"""Convert MTG-Jamendo features (official layout: split TSVs + `NN/ID.npy`) into sharded TFRecords.

Layout written to `out_dir`:
    <split>-00000-of-00016.tfrecord ...   one record per track (see `schema.py`)
    <split>-00000-of-00016.tfrecord.json  per-shard sidecar: tracks, tag counts, skipped tracks
    manifest.json                          everything a reader needs, written last

Guarantees:
- Deterministic: track i of a split (TSV order) goes to shard i % num_shards, records in TSV order,
  protobufs serialized deterministically; the same inputs give byte-identical shards.
- Crash-safe and resumable: a shard is written under a temporary name and renamed when complete (its
  sidecar first, the shard last). A re-run skips shards whose sidecar matches this run's settings, so a
  run killed with SIGKILL and re-run yields exactly the records of an uninterrupted run.
- Strict on bad input: every bad track (missing, unreadable, wrong band count, non-finite, zero frames)
  is reported with its file and reason. By default the conversion fails listing all of them (the good
  shards stay done); with `skip_bad=True` they are skipped and recorded in the manifest. Never silently.
"""

import dataclasses
import hashlib
import json
import multiprocessing
import os
import queue as queue_lib

from tfmood import metadata
from tfmood.data import features as feature_kinds
from tfmood.data import schema
from tfmood.tags import NUM_TAGS, TAGS, tag_index

MANIFEST = "manifest.json"
SIDECAR_VERSION = 2  # bump when the sidecar's fields change: older finished shards are then redone


class ConversionError(RuntimeError):
    """Raised when bad tracks stop a strict conversion; `.bad` lists (split, track, file, reason)."""

    def __init__(self, bad):
        self.bad = bad
        lines = "\n".join(f"  {split}/{track}: {path}: {reason}" for split, track, path, reason in bad)
        super().__init__(
            f"{len(bad)} bad track(s); no manifest written. Fix or remove them, or re-run with --skip-bad "
            f"to skip them (they are then listed in the manifest). Finished shards are kept.\n{lines}")


@dataclasses.dataclass(frozen=True)
class Options:
    features_root: str
    out_dir: str
    kind: str = "mel"
    bands: int = 96
    dtype: str = "float32"
    skip_bad: bool = False

    def validate(self):
        feature_kinds.FEATURE_KINDS.get(self.kind)  # LookupError listing the kinds
        if self.dtype not in schema.STORAGE_DTYPES:
            raise ValueError(f"dtype must be one of {schema.STORAGE_DTYPES}. Received: {self.dtype!r}")
        if self.bands < 1:
            raise ValueError(f"bands must be >= 1. Received: {self.bands}")
        if not os.path.isdir(self.features_root):
            raise FileNotFoundError(f"features root {self.features_root!r} is not a directory")


@dataclasses.dataclass(frozen=True)
class ShardTask:
    split: str
    index: int
    num_shards: int
    tracks: tuple

    @property
    def name(self):
        return schema.shard_name(self.split, self.index, self.num_shards)


def plan(splits: dict, num_shards: int) -> list:
    """Deterministic shard assignment: track i of a split goes to shard i % num_shards."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1. Received: {num_shards}")
    tasks = []
    for split, tracks in splits.items():
        n = min(num_shards, max(1, len(tracks)))
        tasks += [ShardTask(split, i, n, tuple(tracks[i::n])) for i in range(n)]
    return tasks


def fingerprint(task: ShardTask, options: Options) -> str:
    """What a finished shard was made from; a re-run with other settings or tracks redoes the shard."""
    desc = json.dumps([schema.SCHEMA_VERSION, SIDECAR_VERSION, os.path.abspath(options.features_root), options.kind,
                       options.bands, options.dtype, options.skip_bad,
                       [(t.track_id, t.path, t.tags) for t in task.tracks]])
    return hashlib.sha256(desc.encode()).hexdigest()


def feature_file(track, options: Options) -> str:
    suffix = feature_kinds.FEATURE_SUFFIX.get(options.kind, ".npy")
    if suffix is None:
        return os.path.join(options.features_root, track.path)
    return track.feature_path(options.features_root, suffix)


def _sidecar(task, options):
    return os.path.join(options.out_dir, task.name + ".json")


def is_done(task: ShardTask, options: Options) -> bool:
    shard, sidecar = os.path.join(options.out_dir, task.name), _sidecar(task, options)
    if not (os.path.exists(shard) and os.path.exists(sidecar)):
        return False
    with open(sidecar) as f:
        return json.load(f).get("fingerprint") == fingerprint(task, options)


def convert_shard(task: ShardTask, options: Options, tick=None) -> dict:
    """Write one shard (temp name, then rename). Returns its summary; `bad` lists bad tracks."""
    import tensorflow as tf  # workers import TF themselves (spawned processes)

    load = feature_kinds.FEATURE_KINDS.get(options.kind)
    shard = os.path.join(options.out_dir, task.name)
    tmp = shard + f".tmp-{os.getpid()}"
    summary = {"fingerprint": fingerprint(task, options), "split": task.split, "tracks": 0,
               "frames": 0, "min_frames": None, "max_frames": None,
               "tag_counts": [0] * NUM_TAGS, "track_frames": [], "skipped": [], "bad": []}
    with tf.io.TFRecordWriter(tmp) as writer:
        for track in task.tracks:
            path = feature_file(track, options)
            try:
                feats = load(path, bands=options.bands)
            except feature_kinds.BadTrack as e:
                entry = {"track": track.name, "file": path, "reason": str(e)}
                summary["bad"].append(entry)
                if tick:
                    tick(1)
                continue
            writer.write(schema.serialize(track.track_id, [tag_index(t) for t in track.tags], feats,
                                          options.dtype))
            _count(summary, track, feats.shape[1])
            if tick:
                tick(1)
    if summary["bad"] and not options.skip_bad:
        os.remove(tmp)  # a strict run never leaves a shard that lacks a track
        return summary
    summary["skipped"], summary["bad"] = summary["bad"], []
    write_json_atomic(_sidecar(task, options), summary)
    os.replace(tmp, shard)
    return summary


def _count(summary, track, frames):
    summary["tracks"] += 1
    summary["frames"] += int(frames)
    summary["track_frames"].append(int(frames))
    summary["min_frames"] = frames if summary["min_frames"] is None else min(summary["min_frames"], frames)
    summary["max_frames"] = frames if summary["max_frames"] is None else max(summary["max_frames"], frames)
    for t in track.tags:
        summary["tag_counts"][tag_index(t)] += 1


def write_json_atomic(path, obj):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def remove_stale_temporaries(out_dir):
    """Delete half-written `*.tmp-<pid>` files left by a killed run (one converter per folder at a time)."""
    for name in os.listdir(out_dir):
        if ".tmp-" in name:
            os.remove(os.path.join(out_dir, name))


def _worker(args):
    task, options, progress = args
    return task, convert_shard(task, options, progress.put)


def run(splits: dict, options: Options, num_shards: int = 16, workers: int = None, show_progress=True) -> dict:
    """Convert `splits` (split name -> [Track]) and write the manifest. Returns the manifest dict."""
    from tqdm import tqdm

    options.validate()
    os.makedirs(options.out_dir, exist_ok=True)
    remove_stale_temporaries(options.out_dir)
    tasks = plan(splits, num_shards)
    todo = [t for t in tasks if not is_done(t, options)]
    results = {t: _read_sidecar(t, options) for t in tasks if t not in todo}
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    total = sum(len(t.tracks) for t in todo)
    bar = tqdm(total=total, unit="track", desc=f"converting {len(todo)}/{len(tasks)} shards",
               disable=not show_progress or total == 0)
    if todo:
        results.update(_run_tasks(todo, options, workers, bar))
    bar.close()
    bad = [(t.split, b["track"], b["file"], b["reason"]) for t in tasks for b in results[t]["bad"]]
    if bad:
        raise ConversionError(bad)
    manifest = build_manifest(tasks, results, options)
    write_json_atomic(os.path.join(options.out_dir, MANIFEST), manifest)
    return manifest


def _run_tasks(todo, options, workers, bar):
    """Run shard tasks in-process (1 worker) or on a spawn pool (TF is not fork-safe), ticking `bar`."""
    if workers == 1:
        return {t: convert_shard(t, options, bar.update) for t in todo}
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(workers) as pool:
        progress = manager.Queue()
        pending = pool.map_async(_worker, [(t, options, progress) for t in todo])
        while not pending.ready():
            try:
                bar.update(progress.get(timeout=0.2))
            except queue_lib.Empty:
                pass
        while not progress.empty():
            bar.update(progress.get())
        return dict(pending.get())


def _read_sidecar(task, options):
    with open(_sidecar(task, options)) as f:
        return json.load(f)


def build_manifest(tasks, results, options) -> dict:
    splits = {}
    for task in tasks:
        r = results[task]
        s = splits.setdefault(task.split, {"tracks": 0, "frames": 0, "min_frames": None, "max_frames": None,
                                           "shards": [], "tag_counts": [0] * NUM_TAGS, "track_frames": [],
                                           "skipped": []})
        s["tracks"] += r["tracks"]
        s["frames"] += r["frames"]
        for key, pick in (("min_frames", min), ("max_frames", max)):
            if r[key] is not None:
                s[key] = r[key] if s[key] is None else pick(s[key], r[key])
        s["shards"].append(task.name)
        s["tag_counts"] = [a + b for a, b in zip(s["tag_counts"], r["tag_counts"])]
        s["track_frames"] += r["track_frames"]  # lets the pipeline know an epoch's exact length
        s["skipped"] += r["skipped"]
    for s in splits.values():
        s["tag_counts"] = dict(zip(TAGS, s["tag_counts"]))
    return {"schema_version": schema.SCHEMA_VERSION, "feature_kind": options.kind, "bands": options.bands,
            "feature_shape": [options.bands, None], "layout": "[bands, frames] band-major per track",
            "dtype": options.dtype, "tags": list(TAGS), "splits": splits}


def read_manifest(records_dir: str) -> dict:
    path = os.path.join(records_dir, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No {MANIFEST} in {records_dir!r}: not a converted dataset (or the conversion did not finish). "
            f"Run `python tools/convert.py ... --out {records_dir}` first.")
    with open(path) as f:
        return json.load(f)


def load_splits(split_dir: str = None, tsvs: dict = None) -> dict:
    """split name -> [Track] from a `splits/split-N` folder or explicit {split: tsv} paths."""
    paths = dict(tsvs or {})
    if split_dir:
        paths = {s: p for s, p in metadata.split_files(split_dir).items() if os.path.exists(p)} | paths
    if not paths:
        raise FileNotFoundError(f"No split TSVs found (looked in {split_dir!r}).")
    return {s: metadata.read_split(p) for s, p in paths.items()}
