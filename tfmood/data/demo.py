"""The built-in demo dataset: small, deterministic, learnable, in MTG's official layout.

`ensure_demo_records()` generates it on first use — split TSVs and `NN/ID.npy` mel-spectrograms exactly as
MTG distributes them — and converts it with the same converter users run on the real data, into
`records/demo/`. It lets `python -m tfmood.train --model mobilenetv2` show learning in minutes on a CPU.

Signal: every tag owns a distinct spectro-temporal texture — stripes with a tag-specific spacing along
frequency (7 spacings) pulsing with a tag-specific period along time (8 periods) — placed at a random
frequency offset, so a model must learn the texture, not a fixed position. Tracks carry 1-3 tags (like the
real ~1.8) with a skewed tag frequency; every tag occurs in every split.
"""

import os

import numpy as np

from tfmood import metadata
from tfmood.data import convert
from tfmood.tags import NUM_TAGS, TAGS

DEMO_VERSION = 2
BANDS = 96
SPLIT_SIZES = {"train": 700, "validation": 224, "test": 224}
FRAME_RANGE = (160, 420)
_SPACINGS = (3, 4, 5, 6, 7, 9, 11)
_PERIODS = (4, 6, 8, 11, 14, 18, 24, 32)


def tag_texture(tag: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A [BANDS, frames] 0/1 pattern for `tag`: striped in frequency, pulsed in time, randomly placed."""
    spacing, period = _SPACINGS[tag % 7], _PERIODS[tag // 7]
    f = np.arange(BANDS)[:, None]
    t = np.arange(frames)[None, :]
    lo = rng.integers(0, BANDS // 2)
    region = (f >= lo) & (f < lo + BANDS // 2)
    stripes = (f - lo) % spacing == 0
    pulses = ((t + rng.integers(0, period)) % period) < max(1, period // 2)
    return (region & stripes & pulses).astype(np.float32)


def synth_track(tags, frames: int, rng: np.random.Generator) -> np.ndarray:
    """MTG-scale mel-spectrogram (20*log10 of mel power) with the tags' textures over a noisy floor."""
    power = 10 ** (rng.normal(-3.0, 0.5, (BANDS, frames)))                   # ~ -60 dB floor
    power *= 10 ** (-np.linspace(0, 2, BANDS))[:, None]                      # darker highs, like music
    for tag in tags:
        power += 10 ** rng.uniform(-0.5, 0.5) * tag_texture(tag, frames, rng)
    return (20 * np.log10(np.maximum(power, 1e-10))).astype(np.float32)


def _draw_tags(i: int, rng: np.random.Generator, popularity: np.ndarray) -> tuple:
    first = i % NUM_TAGS                               # cycling guarantees every tag in every split
    extra = rng.choice(NUM_TAGS, size=rng.integers(0, 3), replace=False, p=popularity)
    return tuple(sorted({first, *extra.tolist()}))


def generate(root: str, seed: int = 0, sizes: dict = None, frame_range: tuple = FRAME_RANGE) -> dict:
    """Write `root/splits/*.tsv` and `root/features/NN/ID.npy`. Returns split -> [Track].

    `sizes` (split -> tracks, default `SPLIT_SIZES`) and `frame_range` shrink it for tests; keep every
    split at >= 56 tracks so that every tag occurs in it.
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
            _save_npy(track.feature_path(os.path.join(root, "features")), synth_track(tags, frames, rng))
            tracks.append(track)
            next_id += 1
        os.makedirs(os.path.join(root, "splits"), exist_ok=True)
        metadata.write_split(os.path.join(root, "splits", f"autotagging_moodtheme-{split}.tsv"), tracks)
        splits[split] = tracks
    return splits


def _save_npy(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, path)


def ensure_demo_records(records_root: str = "records", show_progress: bool = True) -> str:
    """Return `records_root/demo`, generating and converting the demo dataset on first use."""
    out = os.path.join(records_root, "demo")
    try:
        if convert.read_manifest(out).get("demo_version") == DEMO_VERSION:
            return out
    except FileNotFoundError:
        pass
    raw = os.path.join(records_root, "demo-source")
    print(f"Generating the built-in demo dataset in {raw} (first use only) ...")
    splits = generate(raw)
    options = convert.Options(features_root=os.path.join(raw, "features"), out_dir=out, kind="mel", bands=BANDS)
    manifest = convert.run(splits, options, num_shards=4, workers=1, show_progress=show_progress)
    manifest["demo_version"] = DEMO_VERSION
    convert._atomic_json(os.path.join(out, convert.MANIFEST), manifest)
    return out
