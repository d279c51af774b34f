"""A random-access frame store derived from a split's whole-track TFRecords, for training crops.

Why: a TFRecord holds a whole track and cannot be read in part, so taking one 960-frame crop of a
~10,000-frame track (what every recipe does per epoch) reads and parses ~10x the bytes it keeps. The store
keeps the same frames once more, time-major, in one flat raw file per shard (`frames-NNNNN.bin`, the
records' storage dtype, little-endian, `[frames, bands]`), plus an index of each track's shard, first frame,
length and labels. A crop is then one contiguous `pread` of exactly its own bytes (read amplification 1x).

The store is built once, streaming (memory flat in the dataset size), and deterministically: shard order and
the tracks' order inside each shard are the records'. It lives in `RECORDS/framestore/SPLIT/` (or, when the
records folder is read-only, under `~/.cache/tfmood/framestore/`), and `store.json` — written last,
atomically — carries a fingerprint of the shards it came from: a changed record folder rebuilds it, an
interrupted build leaves nothing that passes for a store. The TFRecords stay the format of record (evaluation
reads them in TSV order); the store can be deleted at any time.
"""

import atexit
import contextlib
import fcntl
import functools
import gc
import hashlib
import json
import os
import shutil
import threading

import numpy as np
import tensorflow as tf

from tfmood.data import schema
from tfmood.data.convert import read_manifest, shard_paths, write_json_atomic
from tfmood.tags import NUM_TAGS

STORE_VERSION = 1
STORE_JSON = "store.json"


def fingerprint(records_dir: str, split: str) -> str:
    """What the store of `split` is made from: the shards' names, sizes and modification times."""
    manifest = read_manifest(records_dir)
    shards = [(os.path.basename(p), os.path.getsize(p), os.stat(p).st_mtime_ns)
              for p in shard_paths(records_dir, split, manifest)]
    desc = json.dumps([STORE_VERSION, manifest["dtype"], int(manifest["bands"]), split, shards])
    return hashlib.sha256(desc.encode()).hexdigest()


def _candidate_dirs(records_dir, split):
    yield os.path.join(records_dir, "framestore", split)
    key = hashlib.sha256(os.path.abspath(records_dir).encode()).hexdigest()[:16]
    yield os.path.join(os.path.expanduser("~"), ".cache", "tfmood", "framestore", key, split)


def _is_current(folder, print_) -> bool:
    try:
        with open(os.path.join(folder, STORE_JSON)) as f:
            return json.load(f)["fingerprint"] == print_
    except (OSError, ValueError, KeyError):
        return False


def ensure(records_dir: str, split: str = "train") -> "FrameStore":
    """The frame store of `split`, built (or rebuilt, if the records changed) on first use."""
    print_ = fingerprint(records_dir, split)
    errors = []
    for folder in _candidate_dirs(records_dir, split):
        if _is_current(folder, print_):
            return FrameStore(folder)
        try:
            with _build_lock(folder):  # several processes (workers of one job) may start at once
                if not _is_current(folder, print_):
                    build(records_dir, split, folder, print_)
            return FrameStore(folder)
        except PermissionError as error:  # a read-only records folder: try the user's cache
            errors.append(f"{folder}: {error.strerror}")
    raise PermissionError(f"Cannot write a frame store for {records_dir!r} split {split!r}: " + "; ".join(errors))


@contextlib.contextmanager
def _build_lock(folder):
    """Wait for, then hold, an flock beside `folder` (the kernel releases it if the holder dies)."""
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with open(os.path.join(os.path.dirname(folder), f".{os.path.basename(folder)}.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build(records_dir: str, split: str, folder: str, print_: str) -> None:
    """Write the store into a temporary sibling folder, then move it into place (the old one, if any, goes)."""
    manifest = read_manifest(records_dir)
    dtype = np.dtype(manifest["dtype"]).newbyteorder("<")
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{os.path.basename(folder)}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    index = {"shard": [], "start": [], "frames": [], "track_id": [], "labels": []}
    shards = shard_paths(records_dir, split, manifest)
    for s, path in enumerate(shards):
        first = 0
        with open(os.path.join(tmp, f"frames-{s:05d}.bin"), "wb") as out:
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                track_id, labels, features = schema.decode_numpy(record, manifest["dtype"])
                out.write(np.ascontiguousarray(features.T, dtype=dtype).tobytes())
                multi_hot = np.zeros(NUM_TAGS, np.uint8)
                multi_hot[labels] = 1
                for key, value in (("shard", s), ("start", first), ("frames", features.shape[1]),
                                   ("track_id", track_id), ("labels", multi_hot)):
                    index[key].append(value)
                first += features.shape[1]
    if not index["shard"]:
        shutil.rmtree(tmp)
        raise ValueError(f"No tracks in split {split!r} of {records_dir!r}.")
    np.savez(os.path.join(tmp, "index.npz"), **{k: np.asarray(v) for k, v in index.items()})
    write_json_atomic(os.path.join(tmp, STORE_JSON),
                      {"fingerprint": print_, "version": STORE_VERSION, "dtype": manifest["dtype"],
                       "bands": int(manifest["bands"]), "shards": len(shards), "tracks": len(index["shard"])})
    old = os.path.join(parent, f".old-{os.path.basename(folder)}-{os.getpid()}")
    if os.path.exists(folder):
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


class FrameStore:
    """Read side: `crops(tracks, starts, crop_frames)` -> `[n, crop_frames, bands]` (time-major).

    A crop of a track shorter than `crop_frames` is taken from the track repeated along time (as
    `augment.tile_to_length` does), so offsets mean the same as in the whole-track crops.
    """

    def __init__(self, folder: str):
        with open(os.path.join(folder, STORE_JSON)) as f:
            meta = json.load(f)
        self.folder, self.bands = folder, int(meta["bands"])
        self.dtype = np.dtype(meta["dtype"]).newbyteorder("<")
        with np.load(os.path.join(folder, "index.npz")) as index:
            self.shard, self.start, self.frames = index["shard"], index["start"], index["frames"]
            self.track_id, self.labels = index["track_id"], index["labels"].astype(np.float32)
        self._fds, self._lock = {}, threading.Lock()
        self.row_bytes = self.bands * self.dtype.itemsize
        _end_iterators_at_exit()  # a process that reads crops must not hang at exit: see _end_live_iterators

    def __len__(self):
        return len(self.shard)

    def _fd(self, shard: int) -> int:
        # One descriptor per shard and process, shared by the loader's threads (pread has no file position).
        fd = self._fds.get(shard)
        if fd is None:
            with self._lock:
                fd = self._fds.get(shard)
                if fd is None:
                    fd = os.open(os.path.join(self.folder, f"frames-{shard:05d}.bin"), os.O_RDONLY)
                    self._fds[shard] = fd
        return fd

    def effective_frames(self, crop_frames: int) -> np.ndarray:
        """Each track's length after repeating short tracks up to `crop_frames` (the offsets' range)."""
        reps = np.maximum(1, -(-crop_frames // self.frames))
        return np.where(self.frames < crop_frames, self.frames * reps, self.frames)

    def crops(self, tracks, starts, crop_frames: int) -> np.ndarray:
        out = np.empty((len(tracks), int(crop_frames), self.bands), self.dtype)
        for j, (t, s) in enumerate(zip(tracks, starts)):
            t, s, fd = int(t), int(s), self._fd(int(self.shard[t]))
            frames = int(self.frames[t])
            if frames >= crop_frames:
                n = os.preadv(fd, [memoryview(out[j]).cast("B")], (int(self.start[t]) + s) * self.row_bytes)
            else:  # short track: read it whole, repeat it, then slice
                whole = np.empty((frames, self.bands), self.dtype)
                n = os.preadv(fd, [memoryview(whole).cast("B")], int(self.start[t]) * self.row_bytes)
                idx = (s + np.arange(crop_frames)) % frames
                out[j] = whole[idx]
                n = out[j].nbytes if n == whole.nbytes else -1
            if n != out[j].nbytes:
                raise OSError(f"Short read from {self.folder}/frames-{int(self.shard[t]):05d}.bin: the frame "
                              f"store is damaged; delete {self.folder} and it is rebuilt.")
        return out

    def close(self):
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


@functools.cache  # once per process
def _end_iterators_at_exit():
    atexit.register(_end_live_iterators)


def _end_live_iterators():
    """atexit: destroy the process's live tf.data iterators while Python still serves their reading threads.

    Why: once the interpreter is finalizing, CPython ends (`pthread_exit`) any other thread that takes the GIL.
    A crop read in flight then (`crops` runs in a `numpy_function` on a TF thread and lets go of the GIL in
    `preadv`) never returns, and the iterator's destructor, which the finalizing interpreter runs when it
    clears the module that holds the iterator (a script's `it = iter(ds)`), waits for that read forever.
    atexit hooks run before finalization: destroying an iterator here, as `del it` would, lets its reads end.
    (A check in `crops` cannot help: the thread ends as it takes the GIL back, before any Python runs.) Every
    live iterator goes, not only those reading a store: the process is ending, and any pipeline that runs
    Python can hang it the same way.
    """
    from tensorflow.python.data.ops import iterator_ops, multi_device_iterator_ops  # no public types

    cycles = False
    for obj in gc.get_objects():
        if issubclass(type(obj), iterator_ops.OwnedIterator):
            obj.__dict__.pop("_iterator_resource", None)  # the last reference: the destructor runs now
        elif issubclass(type(obj), multi_device_iterator_ops.OwnedMultiDeviceIterator):  # tf.distribute's
            obj.__dict__.clear()  # its resource is also held by its per-device datasets and their functions,
            cycles = True  # in reference cycles
    if cycles:
        gc.collect()  # ~1 s in a trainer's process: only when needed
