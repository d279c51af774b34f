"""Convert MTG-Jamendo features (official layout: split TSVs + `NN/ID.npy`) into sharded TFRecords.

Layout written to `out_dir`:
    <split>-00000-of-00016.tfrecord ...   one record per track (see `schema.py`)
    <split>-00000-of-00016.tfrecord.json  per-shard sidecar: tracks, tag counts, skipped tracks
    manifest.json                          everything a reader needs, written last

Guarantees:
- Deterministic: track i of a split (TSV order) goes to shard i % num_shards, records in TSV order,
  protobufs serialized deterministically; the same inputs give byte-identical shards.
- Crash-safe and resumable: a shard is written under a temporary name; when complete, the old sidecar is
  deleted, the shard renamed into place, and only then its sidecar written, recording the shard's size, mtime
  and SHA-256. A re-run skips a shard only when its sidecar matches this run's settings *and* the shard on
  disk matches the sidecar (size, and mtime or else the hash), so a run killed with SIGKILL at any instant
  and re-run yields exactly the records of an uninterrupted run. Shards of tracks skipped as bad are redone
  once their files change (fixed).
- The manifest is the only index: readers take the shard list from it, never from a glob. A run deletes
  the old manifest before it changes any shard (no manifest ever describes shards it did not see written)
  and deletes shards of an earlier layout (another --num-shards, a split no longer converted).
- One converter per folder: `out_dir/.convert.lock` (an flock, released by the kernel if the process dies)
  refuses a second one, naming the holder's pid. Pool workers exit when the converter dies.
- Strict on bad input: every bad track (missing, unreadable, wrong band count, non-finite, zero frames)
  is reported with its file and reason. By default the conversion fails listing all of them (the good
  shards stay done); with `skip_bad=True` they are skipped and recorded in the manifest. Never silently.
  Input that cannot be converted at all (duplicate track ids within or across splits, split names or
  TSV paths that would leave `out_dir` / `features_root`) is refused before anything is written.
"""

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import queue as queue_lib
import re
import threading
import time

from tfmood import metadata
from tfmood.data import features as feature_kinds
from tfmood.data import schema
from tfmood.tags import NUM_TAGS, TAGS, tag_index

MANIFEST = "manifest.json"
LOCK = ".convert.lock"
SIDECAR_VERSION = 3  # bump when the sidecar's fields change: older finished shards are then redone
# What a split name may look like: it becomes part of file names inside out_dir.
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_SHARD_FILE = re.compile(r"^.+-\d{5}-of-\d{5}\.tfrecord(\.json)?$")


class ConversionError(RuntimeError):
    """Raised when bad tracks stop a strict conversion; `.bad` lists (split, track, file, reason)."""

    def __init__(self, bad):
        self.bad = bad
        lines = "\n".join(f"  {split}/{track}: {path}: {reason}" for split, track, path, reason in bad)
        super().__init__(
            f"{len(bad)} bad track(s); no manifest written. Fix or remove them, or re-run with --skip-bad "
            f"to skip them (they are then listed in the manifest). Finished shards are kept.\n{lines}")


class InvalidInput(ValueError):
    """Input refused before anything is written (duplicate ids, unsafe split names or paths)."""


class FolderLocked(RuntimeError):
    """Another converter holds `out_dir`'s lock."""


class UnfinishedConversion(FileNotFoundError):
    """Shards without a manifest: a conversion was killed or failed; re-running it finishes it."""


class DamagedRecords(ValueError):
    """A manifest or shard that cannot be read as written; the message names the file and what to do."""


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


def _file_state(path):
    """(size, mtime) of a file, or None when it is missing: a change means a skipped track may be fixed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_done(task: ShardTask, options: Options) -> bool:
    """A finished shard: its sidecar matches this run's settings, the shard matches the sidecar (size and
    SHA-256, so a shard swapped or damaged behind the sidecar's back is redone) and no skipped track's
    file has changed since (a fixed file is retried)."""
    shard = os.path.join(options.out_dir, task.name)
    side = _read_json(_sidecar(task, options))
    if not (isinstance(side, dict) and side.get("fingerprint") == fingerprint(task, options)
            and os.path.exists(shard) and os.path.getsize(shard) == side.get("shard_bytes")):
        return False
    if any(_file_state(s["file"]) != s.get("file_state") for s in side.get("skipped", [])):
        return False
    if os.stat(shard).st_mtime_ns == side.get("shard_mtime_ns"):
        return True  # untouched since its sidecar was written: skip hashing (~150 MB/s, minutes on MTG's full set)
    return _sha256(shard) == side.get("shard_sha256")


def convert_shard(task: ShardTask, options: Options, tick=None) -> dict:
    """Write one shard (temp name, then rename). Returns its summary; `bad` lists bad tracks."""
    import tensorflow as tf  # workers import TF themselves (spawned processes)

    load = feature_kinds.FEATURE_KINDS.get(options.kind)
    shard = os.path.join(options.out_dir, task.name)
    tmp = shard + f".tmp-{os.getpid()}"
    summary = {"fingerprint": fingerprint(task, options), "split": task.split, "tracks": 0,
               "frames": 0, "min_frames": None, "max_frames": None,
               "tag_counts": [0] * NUM_TAGS, "track_frames": [], "skipped": [], "bad": []}
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for track in task.tracks:
                path = feature_file(track, options)
                try:
                    feats = load(path, bands=options.bands)
                except feature_kinds.BadTrack as e:
                    feats, reason = None, str(e)
                except Exception as e:  # noqa: BLE001 - one odd file must not lose the list of all bad ones
                    feats, reason = None, f"unreadable ({type(e).__name__}: {e})"
                if feats is None:
                    summary["bad"].append({"track": track.name, "file": path, "reason": reason,
                                           "file_state": _file_state(path)})
                else:
                    writer.write(schema.serialize(track.track_id, [tag_index(t) for t in track.tags], feats,
                                                  options.dtype))
                    _count(summary, track, feats.shape[1])
                if tick:
                    tick(1)
        if summary["bad"] and not options.skip_bad:
            return summary  # a strict run never leaves a shard that lacks a track (the temp is removed below)
        summary["skipped"], summary["bad"] = summary["bad"], []
        summary["shard_bytes"], summary["shard_sha256"] = os.path.getsize(tmp), _sha256(tmp)
        # Order matters for SIGKILL at any instant: first no sidecar (the shard is then "not done"), then the
        # new shard, then its sidecar. The old order (sidecar first) let a kill pair a new sidecar with an
        # older shard of the same name, which the re-run accepted.
        with contextlib.suppress(FileNotFoundError):
            os.remove(_sidecar(task, options))
        os.replace(tmp, shard)
        summary["shard_mtime_ns"] = os.stat(shard).st_mtime_ns
        write_json_atomic(_sidecar(task, options), summary)
        return summary
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


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
    """Delete half-written `*.tmp-<pid>` files left by a killed run (safe: the folder lock is held)."""
    for name in os.listdir(out_dir):
        if ".tmp-" in name:
            os.remove(os.path.join(out_dir, name))


def stale_shards(out_dir, tasks) -> list:
    """Shard files and sidecars in `out_dir` that this plan does not write (an earlier layout)."""
    keep = {t.name for t in tasks} | {t.name + ".json" for t in tasks}
    return sorted(n for n in os.listdir(out_dir) if _SHARD_FILE.match(n) and n not in keep)


@contextlib.contextmanager
def folder_lock(out_dir):
    """Hold `out_dir/.convert.lock` (flock: the kernel drops it when the holder dies, even by SIGKILL)."""
    import fcntl

    path = os.path.join(out_dir, LOCK)
    f = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise FolderLocked(f"{out_dir} is being converted by another process (pid {holder}, lock {path}). "
                               "Wait for it to finish or stop it, then re-run.") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield
    finally:
        f.close()  # releases the lock


def check_input(splits: dict, options: Options):
    """Refuse, before anything is written, input that cannot become a correct dataset."""
    problems = []
    for split in splits:
        if not (isinstance(split, str) and _SPLIT_NAME.match(split)) or ".." in split:
            problems.append(f"split name {split!r}: use letters, digits, '_', '-' and '.' only (it becomes "
                            "part of the shard file names in the output folder)")
    seen = {}
    for split, tracks in splits.items():
        for t in tracks:
            if t.track_id in seen:
                problems.append(f"{split}/{t.name}: duplicate track id (already in {seen[t.track_id]})")
            else:
                seen[t.track_id] = split
            try:
                metadata.check_relative_path(t.path)
            except ValueError as e:
                problems.append(f"{split}/{t.name}: {e}")
    if problems:
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InvalidInput(f"{len(problems)} problem(s) in the split files; nothing was converted:\n  "
                           + "\n  ".join(problems[:20]) + more)


def run(splits: dict, options: Options, num_shards: int = 16, workers: int = None, show_progress=True) -> dict:
    """Convert `splits` (split name -> [Track]) and write the manifest. Returns the manifest dict."""
    from tqdm import tqdm

    options.validate()
    check_input(splits, options)
    tasks = plan(splits, num_shards)
    os.makedirs(options.out_dir, exist_ok=True)
    with folder_lock(options.out_dir):
        remove_stale_temporaries(options.out_dir)
        todo = [t for t in tasks if not is_done(t, options)]
        stale = stale_shards(options.out_dir, tasks)
        if todo or stale:
            # Before any shard changes: a manifest must never describe shards it did not see written.
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(options.out_dir, MANIFEST))
        for name in stale:
            os.remove(os.path.join(options.out_dir, name))
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


_PROGRESS = None  # a worker's progress queue (set by the pool initializer)


def _init_worker(progress, parent_pid):
    global _PROGRESS
    _PROGRESS = progress
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid, interval=0.2):
    """A worker whose converter died (kill -9) stops at once instead of finishing shards nobody collects."""
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os._exit(1)


def _worker(args):
    task, options = args
    return task, convert_shard(task, options, _PROGRESS.put)


def _run_tasks(todo, options, workers, bar):
    """Run shard tasks in-process (1 worker) or on a spawn pool (TF is not fork-safe), ticking `bar`."""
    if workers == 1:
        return {t: convert_shard(t, options, bar.update) for t in todo}
    ctx = multiprocessing.get_context("spawn")
    progress = ctx.Queue()  # handed over at spawn (no Manager process, which would outlive a killed converter)
    with ctx.Pool(workers, initializer=_init_worker, initargs=(progress, os.getpid())) as pool:
        pending = pool.map_async(_worker, [(t, options) for t in todo])
        while not pending.ready():
            try:
                bar.update(progress.get(timeout=0.2))
            except queue_lib.Empty:
                pass
        with contextlib.suppress(queue_lib.Empty):
            while True:
                bar.update(progress.get(timeout=0.05))
        return dict(pending.get())


def _read_sidecar(task, options):
    with open(_sidecar(task, options), encoding="utf-8") as f:
        return json.load(f)


def build_manifest(tasks, results, options) -> dict:
    splits = {}
    for task in tasks:
        r = results[task]
        s = splits.setdefault(task.split, {"tracks": 0, "frames": 0, "min_frames": None, "max_frames": None,
                                           "shards": [], "shard_bytes": [], "tag_counts": [0] * NUM_TAGS,
                                           "track_frames": [], "skipped": []})
        s["tracks"] += r["tracks"]
        s["frames"] += r["frames"]
        for key, pick in (("min_frames", min), ("max_frames", max)):
            if r[key] is not None:
                s[key] = r[key] if s[key] is None else pick(s[key], r[key])
        s["shards"].append(task.name)  # the readers' only index of the shards (never a glob)
        s["shard_bytes"].append(r.get("shard_bytes"))  # lets readers spot a truncated copy up front
        s["tag_counts"] = [a + b for a, b in zip(s["tag_counts"], r["tag_counts"])]
        s["track_frames"] += r["track_frames"]  # lets the pipeline know an epoch's exact length
        s["skipped"] += [{k: v for k, v in b.items() if k != "file_state"} for b in r["skipped"]]
    for s in splits.values():
        s["tag_counts"] = dict(zip(TAGS, s["tag_counts"]))
    return {"schema_version": schema.SCHEMA_VERSION, "feature_kind": options.kind, "bands": options.bands,
            "feature_shape": [options.bands, None], "layout": "[bands, frames] band-major per track",
            "dtype": options.dtype, "tags": list(TAGS), "splits": splits}


def read_manifest(records_dir: str) -> dict:
    """The manifest of a converted dataset; a clear error naming the file for a missing, unfinished or
    damaged one."""
    path = os.path.join(records_dir, MANIFEST)
    if not os.path.exists(path):
        shards = os.listdir(records_dir) if os.path.isdir(records_dir) else []
        shards = [n for n in shards if _SHARD_FILE.match(n) and n.endswith(".tfrecord")]
        if shards:
            raise UnfinishedConversion(
                f"{records_dir} holds {len(shards)} shard(s) but no {MANIFEST}: the conversion is unfinished "
                "(it was killed or stopped at bad tracks). Re-run the same `python tools/convert.py` command "
                "to finish it.")
        raise FileNotFoundError(
            f"No {MANIFEST} in {records_dir!r}: not a converted dataset (or the conversion did not finish). "
            f"Run `python tools/convert.py ... --out {records_dir}` first.")
    redo = f"Re-run `python tools/convert.py ... --out {records_dir}` to rewrite it."
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedRecords(f"{path} is damaged (not valid JSON: {e}). {redo}") from None
    missing = [k for k in ("splits", "bands", "dtype") if not isinstance(manifest, dict) or k not in manifest]
    if missing or not isinstance(manifest["splits"], dict):
        raise DamagedRecords(f"{path} is not a tfmood manifest (missing {missing or ['splits']}). {redo}")
    return manifest


def shard_paths(records_dir: str, split: str, manifest: dict = None) -> list:
    """The split's shard files, exactly as the manifest lists them, each checked to exist with the size the
    converter wrote (a truncated copy otherwise surfaces later as an anonymous `DataLossError`)."""
    manifest = manifest or read_manifest(records_dir)
    if split not in manifest["splits"]:
        raise LookupError(f"No split {split!r} in {os.path.join(records_dir, MANIFEST)}; it has "
                       f"{sorted(manifest['splits'])}.")
    entry = manifest["splits"][split]
    sizes = entry.get("shard_bytes") or [None] * len(entry["shards"])
    paths = []
    for name, size in zip(entry["shards"], sizes):
        path = os.path.join(records_dir, name)
        actual = os.path.getsize(path) if os.path.exists(path) else None
        if actual is None or (size is not None and actual != size):
            state = "is missing" if actual is None else f"has {actual} bytes, the converter wrote {size}"
            raise DamagedRecords(f"Shard {path} {state}: the records are damaged. Re-run the same "
                                 "`python tools/convert.py` command to rewrite it.")
        paths.append(path)
    return paths


def load_splits(split_dir: str = None, tsvs: dict = None) -> dict:
    """split name -> [Track] from a `splits/split-N` folder or explicit {split: tsv} paths."""
    paths = dict(tsvs or {})
    if split_dir:
        paths = {s: p for s, p in metadata.split_files(split_dir).items() if os.path.exists(p)} | paths
    if not paths:
        raise FileNotFoundError(f"No split TSVs found (looked for autotagging_moodtheme-{{train,validation,test}}"
                                f".tsv in {split_dir!r}). Pass --splits FOLDER or --tsv SPLIT=PATH.")
    return {s: metadata.read_split(p) for s, p in paths.items()}
