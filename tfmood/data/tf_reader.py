"""A crop reader made of TensorFlow ops only, for pipelines that run where Python cannot (tf.data service).

Why: the frame store's reader (`FrameStore.crops`, a `numpy_function` doing one `pread` per crop) cannot run
on tf.data service workers, which receive the dataset as a serialized graph, without the client's Python.
TensorFlow has no op that reads a byte range of a raw file: `FixedLengthRecordDataset`'s `header_bytes`
reads through the bytes it skips (measured: a crop 150 MB into a shard read 408 crops' worth), and
`read_file` reads the whole file. `TFRecordDatasetV2` with `byte_offsets` seeks (measured: 1.00x), so this
reader keeps the frame store's frames once more as TFRecords of fixed windows of `window_frames` frames
(`windows-NNNNN.tfrecord`, one per frame-store shard, each track's windows in order, the last one shorter),
and a crop reads the windows that cover it: read amplification about `(crop + window) / crop`.

The windows live in the frame store's folder (`tf-windows-W/`), so they go when the store is rebuilt; they
are built on first use from the store's raw files (streaming, atomic: `windows.json` is written last) and
can be deleted at any time. The graph holds their absolute paths: a tf.data service worker must see the
store at the same path (a shared filesystem, or the same host).
"""

import json
import os
import shutil

import numpy as np
import tensorflow as tf

from tfmood.data import framestore
from tfmood.data.convert import write_json_atomic

WINDOWS_VERSION = 1
WINDOWS_JSON = "windows.json"
_RECORD_OVERHEAD = 16  # a TFRecord frames its data with a length (8 bytes) and two CRCs (4 + 4)


def window_frames_for(crop_frames: int) -> int:
    """The window length the training reader uses for `crop_frames`: a quarter crop (at least 8 frames),
    so a crop reads 4-5 windows, ~1.25x its bytes, whatever the recipe's crop length."""
    return max(8, int(crop_frames) // 4)


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
    """Write every shard's windows into a temporary sibling folder, then move it into place."""
    tmp = f"{folder}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    first_record = np.zeros(len(store), np.int64)  # byte offset of each track's first window in its file
    for shard in np.unique(store.shard):
        raw = np.memmap(os.path.join(store.folder, f"frames-{int(shard):05d}.bin"), store.dtype, "r")
        raw = raw.reshape(-1, store.bands)
        offset = 0
        with tf.io.TFRecordWriter(os.path.join(tmp, f"windows-{int(shard):05d}.tfrecord")) as out:
            for t in np.flatnonzero(store.shard == shard):  # in the store's order: offsets grow
                first_record[t] = offset
                start, frames = int(store.start[t]), int(store.frames[t])
                for w in range(start, start + frames, window_frames):
                    data = np.ascontiguousarray(raw[w: min(w + window_frames, start + frames)]).tobytes()
                    out.write(data)
                    offset += len(data) + _RECORD_OVERHEAD
        del raw
    np.save(os.path.join(tmp, "first_record.npy"), first_record)
    write_json_atomic(os.path.join(tmp, WINDOWS_JSON), {"fingerprint": print_, "version": WINDOWS_VERSION,
                                                         "window_frames": window_frames})
    old = f"{folder}.old-{os.getpid()}"
    if os.path.exists(folder):
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


class WindowStore:
    """Read side: `crops(tracks, starts, crop_frames)` -> `[n, crop_frames, bands]` (time-major, the
    store's dtype), equal to `FrameStore.crops` at the same `(track, start)`: a crop of a track shorter than
    `crop_frames` is taken from the track repeated along time."""

    def __init__(self, store, folder: str):
        with open(os.path.join(folder, WINDOWS_JSON)) as f:
            self.window_frames = int(json.load(f)["window_frames"])
        self.folder, self.bands = folder, store.bands
        self.dtype = tf.as_dtype(store.dtype.newbyteorder("="))
        self._window_bytes = self.window_frames * store.row_bytes + _RECORD_OVERHEAD
        paths = [os.path.join(os.path.abspath(folder), f"windows-{int(s):05d}.tfrecord") for s in store.shard]
        self._paths = tf.constant(paths)
        self._first = tf.constant(np.load(os.path.join(folder, "first_record.npy")), tf.int64)
        self._frames = tf.constant(store.frames, tf.int32)

    def crops(self, tracks, starts, crop_frames: int):
        crop_frames = int(crop_frames)
        return tf.map_fn(lambda ts: self.crop(ts[0], ts[1], crop_frames), (tracks, starts),
                         fn_output_signature=tf.TensorSpec([crop_frames, self.bands], self.dtype))

    def crop(self, track, start, crop_frames: int):
        """One crop: the windows that cover frames `start .. start + crop_frames - 1` (all of a short track's)."""
        w, frames = self.window_frames, self._frames[track]
        short = frames < crop_frames
        first = tf.where(short, 0, start // w)
        last = tf.where(short, frames - 1, start + crop_frames - 1) // w
        count = tf.cast(last - first + 1, tf.int64)
        offset = self._first[track] + tf.cast(first, tf.int64) * self._window_bytes
        variant = tf.raw_ops.TFRecordDatasetV2(
            filenames=tf.reshape(self._paths[track], [1]), compression_type="",
            buffer_size=count * self._window_bytes,  # one read of exactly the covering windows
            byte_offsets=tf.reshape(offset, [1]))
        records = tf.data.experimental.from_variant(variant, tf.TensorSpec([], tf.string)).take(count)
        # Not `records.reduce`: its kernel re-serializes the dataset, and TF 2.21 serializes TFRecordDatasetV2
        # without its `byte_offsets` ("3 inputs specified of 4"). The windows are contiguous frames.
        data = tf.strings.reduce_join(records.batch(count).get_single_element())
        x = tf.reshape(tf.io.decode_raw(data, self.dtype, little_endian=True), [-1, self.bands])
        index = (start + tf.range(crop_frames)) % frames - first * w  # as FrameStore.crops (tiles short tracks)
        return tf.gather(x, index)
