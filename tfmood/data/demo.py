"""The built-in demo dataset: small, deterministic, learnable, in MTG's official layout.

`ensure_demo_records()` generates it on first use — split TSVs and `NN/ID.npy` mel-spectrograms exactly as
MTG distributes them — and converts it with the same converter users run on the real data, into
`records/demo/`. It lets `python -m tfmood.train --model mobilenetv2` show learning in minutes on a CPU.

Signal: every tag owns a distinct spectro-temporal pattern — a two-tone chord at tag-specific pitches (8 low x
7 high = 56), sounding in notes of random length — over a noisy, darker-at-the-top floor. Tracks carry 1-3
tags (like the real ~1.8) with a skewed tag frequency; every tag occurs in every split. Tags sharing a pitch
overlap, so multi-tag tracks are genuinely ambiguous, as in real data.
"""

import contextlib
import os
import socket
import time
import uuid

import numpy as np

from tfmood import metadata
from tfmood.data import convert
from tfmood.tags import NUM_TAGS, TAGS

DEMO_VERSION = 3
BANDS = 96
SPLIT_SIZES = {"train": 700, "validation": 224, "test": 224}
FRAME_RANGE = (160, 420)
_LOW, _HIGH = 8, 7  # tag k = (low pitch k // 7, high pitch k % 7): 8 x 7 = 56 two-tone chords


def tag_texture(tag: int, frames: int, rng: np.random.Generator, bands: int = BANDS) -> np.ndarray:
    """A [bands, frames] 0/1 pattern for `tag`: a two-tone chord at tag-specific pitches, played as notes.

    The low tone sits in the lower half of the bands, the high tone in the upper half, each 2 bands thick;
    notes of random length (16-48 frames) sound with probability 0.75, so the pattern varies in time.
    """
    low, high = divmod(tag, _HIGH)
    rows = [round((4 + 6 * low) * bands / BANDS), round((52 + 6 * high) * bands / BANDS)]
    pattern = np.zeros((bands, frames), np.float32)
    start = 0
    while start < frames:
        length = int(rng.integers(16, 49))
        if rng.random() < 0.75:
            for r in rows:
                pattern[r:r + max(1, 2 * bands // BANDS), start:start + length] = 1.0
        start += length
    return pattern


def synth_track(tags, frames: int, rng: np.random.Generator, bands: int = BANDS) -> np.ndarray:
    """MTG-scale mel-spectrogram (20*log10 of mel power) with the tags' textures over a noisy floor."""
    power = 10 ** (rng.normal(-3.0, 0.5, (bands, frames)))                   # ~ -60 dB floor
    power *= 10 ** (-np.linspace(0, 2, bands))[:, None]                      # darker highs, like music
    for tag in tags:
        power += 10 ** rng.uniform(-0.5, 0.5) * tag_texture(tag, frames, rng, bands)
    return (20 * np.log10(np.maximum(power, 1e-10))).astype(np.float32)


def _draw_tags(i: int, rng: np.random.Generator, popularity: np.ndarray) -> tuple:
    first = i % NUM_TAGS                               # cycling guarantees every tag in every split
    extra = rng.choice(NUM_TAGS, size=rng.integers(0, 3), replace=False, p=popularity)
    return tuple(sorted({first, *extra.tolist()}))


def generate(root: str, seed: int = 0, sizes: dict = None, frame_range: tuple = FRAME_RANGE,
             bands: int = BANDS) -> dict:
    """Write `root/splits/*.tsv` and `root/features/NN/ID.npy`. Returns split -> [Track].

    `sizes` (split -> tracks, default `SPLIT_SIZES`) and `frame_range` shrink it for tests; keep every
    split at >= 56 tracks so that every tag occurs in it. `bands` other than 96 gives the same signal on
    another band count (16: shaped like NSynth WaveNet features).
    """
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, NUM_TAGS + 1) ** 0.8
    popularity = rng.permutation(popularity / popularity.sum())
    splits, next_id = {}, 1
    for split_no, (split, size) in enumerate((sizes or SPLIT_SIZES).items()):
        tracks = []
        for i in range(size):
            tags = _draw_tags(i, rng, popularity)
            frames = int(rng.integers(*frame_range))
            track = metadata.Track(track_id=next_id, artist_id=f"artist_{split_no:03d}{i // 4:03d}",
                                   album_id=f"album_{split_no:03d}{i // 2:04d}", path=f"{next_id % 100:02d}/{next_id}.mp3",
                                   duration=frames * 256 / 12000, tags=tuple(TAGS[t] for t in tags))
            _save_npy(track.feature_path(os.path.join(root, "features")), synth_track(tags, frames, rng, bands))
            tracks.append(track)
            next_id += 1
        os.makedirs(os.path.join(root, "splits"), exist_ok=True)
        metadata.write_split(os.path.join(root, "splits", f"autotagging_moodtheme-{split}.tsv"), tracks)
        splits[split] = tracks
    return splits


def _save_npy(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{_unique_suffix()}.tmp.npy"  # never another writer's temp file, even on another host
    np.save(tmp, array)
    os.replace(tmp, path)


def _unique_suffix() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


# How long a process waits for another one (a second worker of the same job, on this host or another host
# sharing the folder) that is generating the demo dataset. Generation takes about a minute on 2 cores.
GENERATION_TIMEOUT_S = 1800


@contextlib.contextmanager
def _generation_lock(path: str, timeout_s: float):
    """Hold an exclusive `flock` on `path`, waiting at most `timeout_s` for the current holder.

    flock, not a lock file created with O_EXCL: the kernel releases it when its holder dies (even by
    SIGKILL), so a crashed generator never blocks the next start; Linux NFS clients map it onto NFS byte-range
    locks, so it also excludes processes on other hosts that share the folder.
    """
    import fcntl

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        deadline, told = time.monotonic() + timeout_s, False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "unknown"
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"Waited {timeout_s:.0f} s for the demo dataset that {holder} is generating (lock {path}). "
                        "Stop that process, or delete its output folder and the lock file, then re-run.") from None
                if not told:
                    print(f"Waiting for {holder}, which is generating the demo dataset (lock {path}) ...",
                          flush=True)
                    told = True
                time.sleep(0.5)
        f.seek(0)
        f.truncate()
        f.write(f"{socket.gethostname()} pid {os.getpid()}\n")
        f.flush()
        yield  # closing the file releases the lock


# Band count -> (records folder, source folder, feature kind, split sizes). The 16-band variant is shaped like
# NSynth WaveNet features, for smoke runs of the WaveNet recipes; it is smaller because only smoke runs use it.
VARIANTS = {BANDS: ("demo", "demo-source", "mel", SPLIT_SIZES),
            16: ("demo-wavenet", "demo-wavenet-source", "wavenet", {"train": 112, "validation": 56, "test": 56})}


def ensure_demo_records(records_root: str = "records", show_progress: bool = True, bands: int = BANDS) -> str:
    """Return `records_root/demo` (96 mel bands; `bands=16`: `records_root/demo-wavenet`), generating and
    converting the demo dataset on first use."""
    if bands not in VARIANTS:
        raise ValueError(f"`bands` must be one of {sorted(VARIANTS)} for the demo dataset. Received: {bands!r}")
    folder, source, kind, sizes = VARIANTS[bands]
    out = os.path.join(records_root, folder)
    if _is_complete(out):  # the completion marker: a manifest of this demo version, written last
        return out
    # Several processes may start at once (the workers of a multi-worker job, maybe on several hosts sharing
    # this folder): one generates, the others wait for it and then find the finished dataset.
    with _generation_lock(os.path.join(records_root, f".{folder}.lock"), GENERATION_TIMEOUT_S):
        if not _is_complete(out):
            _generate_and_convert(out, os.path.join(records_root, source), kind, sizes, bands, show_progress)
    return out


def _is_complete(out: str) -> bool:
    try:
        return convert.read_manifest(out).get("demo_version") == DEMO_VERSION
    except (FileNotFoundError, convert.UnfinishedConversion):  # an interrupted first use: generate again
        return False


def _generate_and_convert(out, raw, kind, sizes, bands, show_progress):
    print(f"Generating the built-in demo dataset in {raw} (first use only) ...")
    splits = generate(raw, sizes=sizes, bands=bands)
    options = convert.Options(features_root=os.path.join(raw, "features"), out_dir=out, kind=kind, bands=bands)
    manifest = convert.run(splits, options, num_shards=4, workers=1, show_progress=show_progress)
    manifest["demo_version"] = DEMO_VERSION
    convert.write_json_atomic(os.path.join(out, convert.MANIFEST), manifest)
