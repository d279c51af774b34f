"""A crop reader made of TensorFlow ops only, for pipelines that run where Python cannot (tf.data service).

Why: the frame store's reader (`FrameStore.crops`, a `numpy_function` doing one `pread` per crop) cannot run
on tf.data service workers, which receive the dataset as a serialized graph, without the client's Python.
TensorFlow has no op that reads a byte range of a raw file: `FixedLengthRecordDataset`'s `header_bytes`
reads through the bytes it skips (measured: a crop 150 MB into a shard read 408 crops' worth), and
`read_file` reads the whole file. `TFRecordDatasetV2`'s `byte_offsets` seek, but one offset per *file*
(a file is read from its offset to its end), so a crop needs a dataset of its own: ~0.5 ms per crop,
measured (~0.15 ms to make the dataset, ~75 us per window read; BENCHMARKS.md, "Input pipeline on tf.data
service"), against ~0.16 ms here.

So this reader keeps the frame store's frames once more in an SQLite file, `windows.sqlite`, one row per
window of `window_frames` frames (`windows(id INTEGER PRIMARY KEY, frames BLOB)`; the store's tracks in
order, each track's windows in order, its last one shorter), read with `tf.data.experimental.SqlDataset`:
one query per batch fetches every window its crops cover (`WHERE id IN (...) ORDER BY id`: rowid look-ups,
no sort), read amplification about `(crop + window) / crop` and part of a page per window (measured
~1.35x). A window's rowid is arithmetic on the store's
index (`first_window`), so the file holds nothing else.

The windows live in the frame store's folder (`tf-windows-W/`), so they go when the store is rebuilt; they
are built on first use from the store's raw files (streaming, atomic: `windows.json` is written last) and
can be deleted at any time. The graph holds their absolute path: a tf.data service worker must see the
store at the same path (a shared filesystem, or the same host). It opens the file read-only and
`immutable` (no locking, which network filesystems do badly; a rebuild replaces the folder, never the
file).
"""

import json
import os
import shutil
import sqlite3
import urllib.parse

import numpy as np
import tensorflow as tf

from tfmood.data import framestore
from tfmood.data.convert import write_json_atomic

WINDOWS_VERSION = 2  # 1: TFRecord windows, read with one dataset per crop
WINDOWS_JSON = "windows.json"
WINDOWS_DB = "windows.sqlite"
# Pages of 32 KiB: a window (92 KB at 96 bands x 240 float32 frames) is ~3 page reads, not 23 of 4 KiB.
# Measured (96x960 crops, 240-frame windows): 4 KiB 185 us/crop, 16 KiB 153-181, 32 KiB 134-153, 64 KiB
# 132-167; read amplification 1.24x, 1.29x, 1.30x, 1.38x (a page is read whole).
_PAGE_SIZE = 32768


def window_frames_for(crop_frames: int) -> int:
    """The window length the training reader uses for `crop_frames`: a quarter crop (at least 8 frames),
    so a crop reads 4-5 windows, ~1.25x its bytes, whatever the recipe's crop length."""
    return max(8, int(crop_frames) // 4)


def first_window(frames, window_frames: int) -> np.ndarray:
    """Rowid of each track's first window: the store's tracks in order, `ceil(frames / window)` rows each."""
    count = -(-np.asarray(frames, np.int64) // int(window_frames))
    return np.cumsum(count) - count


def ensure(store: "framestore.FrameStore", window_frames: int) -> "WindowStore":
    """The windows of `store` with `window_frames` frames each, built on first use."""
    folder = os.path.join(store.folder, f"tf-windows-{int(window_frames)}")
    print_ = _store_fingerprint(store)
    if not _is_current(folder, print_):
        with framestore._build_lock(folder):  # several processes may start at once: one builds
            if not _is_current(folder, print_):
                build(store, folder, int(window_frames), print_)
    return WindowStore(store, folder)


def _store_fingerprint(store) -> str:
    with open(os.path.join(store.folder, framestore.STORE_JSON)) as f:
        return json.load(f)["fingerprint"]


def _is_current(folder, print_) -> bool:
    try:
        with open(os.path.join(folder, WINDOWS_JSON)) as f:
            meta = json.load(f)
        return meta["fingerprint"] == print_ and meta["version"] == WINDOWS_VERSION
    except (OSError, ValueError, KeyError):
        return False


def build(store, folder: str, window_frames: int, print_: str) -> None:
    """Write every track's windows into a temporary sibling folder, then move it into place."""
    tmp = f"{folder}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    con = sqlite3.connect(os.path.join(tmp, WINDOWS_DB))
    try:
        # No journal and no fsync per transaction: an interrupted build leaves only the temporary folder.
        con.executescript(f"PRAGMA page_size={_PAGE_SIZE}; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                          "CREATE TABLE windows (id INTEGER PRIMARY KEY, frames BLOB NOT NULL);")
        con.executemany("INSERT INTO windows VALUES (?, ?)", _windows(store, window_frames))
        con.commit()
    finally:
        con.close()
    write_json_atomic(os.path.join(tmp, WINDOWS_JSON), {"fingerprint": print_, "version": WINDOWS_VERSION,
                                                         "window_frames": window_frames})
    old = f"{folder}.old-{os.getpid()}"
    if os.path.exists(folder):
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def _windows(store, window_frames):
    """(rowid, bytes) of every window, in rowid order, one shard's raw file mapped at a time."""
    ids = first_window(store.frames, window_frames)
    for shard in np.unique(store.shard):
        raw = np.memmap(os.path.join(store.folder, f"frames-{int(shard):05d}.bin"), store.dtype, "r")
        raw = raw.reshape(-1, store.bands)
        for t in np.flatnonzero(store.shard == shard):
            start, frames = int(store.start[t]), int(store.frames[t])
            for j, w in enumerate(range(start, start + frames, window_frames)):
                yield int(ids[t]) + j, raw[w: min(w + window_frames, start + frames)].tobytes()
        del raw


class WindowStore:
    """Read side: `crops(tracks, starts, crop_frames)` -> `[n, crop_frames, bands]` (time-major, the
    store's dtype), equal to `FrameStore.crops` at the same `(track, start)`: a crop of a track shorter than
    `crop_frames` is taken from the track repeated along time."""

    def __init__(self, store, folder: str):
        with open(os.path.join(folder, WINDOWS_JSON)) as f:
            self.window_frames = int(json.load(f)["window_frames"])
        self.folder, self.bands = folder, store.bands
        self.dtype = tf.as_dtype(store.dtype.newbyteorder("="))
        self.path = os.path.join(os.path.abspath(folder), WINDOWS_DB)
        self._uri = f"file:{urllib.parse.quote(self.path)}?mode=ro&immutable=1"
        self._json = os.path.join(os.path.abspath(folder), WINDOWS_JSON)
        with open(self._json, "rb") as f:
            self._meta = f.read()
        self._first = tf.constant(first_window(store.frames, self.window_frames), tf.int64)
        self._frames = tf.constant(store.frames, tf.int32)

    def crops(self, tracks, starts, crop_frames: int):
        """One query for all the crops' windows (each window once), then one gather into the crops."""
        crop_frames, w = int(crop_frames), self.window_frames
        frames = tf.gather(self._frames, tracks)
        short = frames < crop_frames  # a short track: all its windows (its crop repeats it)
        first = tf.where(short, 0, starts // w)  # the crop's first and last window, in its track
        last = tf.where(short, frames - 1, starts + crop_frames - 1) // w
        head = tf.gather(self._first, tracks) + tf.cast(first, tf.int64)  # rowid of the crop's first window
        count = last - first + 1
        covered = tf.repeat(head, count) + tf.cast(tf.ragged.range(count).flat_values, tf.int64)
        ids = tf.sort(tf.unique(covered)[0])
        got, blobs = self._select(ids)
        damaged = f"{self.path}: windows missing; delete {self.folder} and it is rebuilt"
        tf.debugging.assert_equal(tf.size(got), tf.size(ids), message=damaged)
        tf.debugging.assert_equal(got, ids, message=damaged)
        # Each window padded to a full one (only a track's last is shorter; no index reaches the padding).
        x = tf.reshape(tf.io.decode_raw(blobs, self.dtype, little_endian=True,
                                        fixed_length=w * self.bands * self.dtype.size), [-1, self.bands])
        # A crop's windows are consecutive in `ids` (all rowids from `head` on): frame p of the track is row
        # (slot of head - first) * w + p.
        slot = tf.cast(tf.searchsorted(ids, head), tf.int32)
        frame = (starts[:, None] + tf.range(crop_frames)[None]) % frames[:, None]  # as FrameStore.crops
        return tf.gather(x, frame + ((slot - first) * w)[:, None])

    def _select(self, ids):
        """(rowids, frames) of windows `ids` (sorted, unique), in that order."""
        query = ("SELECT id, frames FROM windows WHERE id IN ("
                 + tf.strings.reduce_join(tf.strings.as_string(ids), separator=",") + ") ORDER BY id")
        # First the windows' description, as read when the graph was made: where the worker cannot see the
        # store, NotFound names the file (TF 2.21's SqlDataset crashes the process on a missing database), and
        # a store rebuilt since (other rowids) stops the run instead of giving other crops. The path depends on
        # `ids` (an empty suffix): a constant path's read would be folded into the graph once, not made per call.
        meta = tf.io.read_file(self._json + tf.strings.substr(tf.strings.as_string(ids[:1]), 0, 0)[0])
        check = tf.debugging.assert_equal(meta, tf.constant(self._meta), message=(
            f"{self.folder} was rebuilt after this dataset was made: make the dataset again"))
        with tf.control_dependencies([check]):
            rows = tf.data.experimental.SqlDataset("sqlite", self._uri, query, (tf.int64, tf.string))
        # All rows as one element (`reduce` would loop over them one at a time).
        return rows.batch(tf.size(ids, tf.int64)).get_single_element()
