"""Reader for MTG-Jamendo split files (`autotagging_moodtheme-{train,validation,test}.tsv`).

The real files are tab-separated with CRLF line endings and a *variable* number of tag columns
(columns 6.. hold one `mood/theme---<tag>` each), so they are parsed with `csv.reader`, not pandas.
"""

import csv
import dataclasses
import io
import os
import re

import numpy as np

from tfmood.tags import NUM_TAGS, tag_index

HEADER = ["TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS"]
SPLITS = ("train", "validation", "test")
_ID = re.compile(r"^track_(\d+)$")


@dataclasses.dataclass(frozen=True)
class Track:
    track_id: int          # numeric id: `track_0000948` -> 948
    artist_id: str
    album_id: str
    path: str              # MTG's relative audio path, e.g. `48/948.mp3`
    duration: float        # seconds
    tags: tuple            # canonical tag names, without the `mood/theme---` prefix

    @property
    def name(self) -> str:
        return f"track_{self.track_id:07d}"

    def feature_path(self, root: str, suffix: str = ".npy") -> str:
        """Where MTG's layout keeps this track's features: `root/NN/ID.npy`."""
        return os.path.join(root, os.path.splitext(self.path)[0] + suffix)

    def label_vector(self) -> np.ndarray:
        y = np.zeros(NUM_TAGS, np.float32)
        y[[tag_index(t) for t in self.tags]] = 1.0
        return y


def parse_track_id(value: str) -> int:
    match = _ID.match(value)
    if not match:
        raise ValueError(f"TRACK_ID must look like 'track_0000948'. Received: {value!r}")
    return int(match.group(1))


def read_split(path: str) -> list:
    """Read one split TSV into a list of `Track`s, in file order.

    Raises `ValueError` naming the file and line for a malformed row or an unknown tag.
    """
    tracks = []
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}). "
                         "MTG's split files are UTF-8: re-save the file as UTF-8.") from None
    rows = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    header = next(rows, None)
    if header is None or [h.strip().lstrip("\ufeff") for h in header[:6]] != HEADER:
        raise ValueError(f"{path}: header must be {' '.join(HEADER)}. Received: {header!r}")
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        try:
            tracks.append(_parse_row(row))
        except (ValueError, KeyError) as e:
            raise ValueError(f"{path}:{line}: {e}") from None
    return tracks


def check_relative_path(path: str) -> str:
    """A TSV PATH must stay inside the features/audio root it is joined to: relative, without `..`."""
    parts = path.replace("\\", "/").split("/")
    if not path or os.path.isabs(path) or path.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise ValueError(f"PATH {path!r} must be a relative path inside the features root (no '..', "
                         "not absolute), e.g. '48/948.mp3'")
    return path


def _parse_row(row: list) -> Track:
    if len(row) < 6:
        raise ValueError(f"expected at least 6 tab-separated columns, got {len(row)}")
    tags = tuple(t.strip() for t in row[5:] if t.strip())
    canonical = tuple(t.split("---", 1)[1] if "---" in t else t for t in tags)
    for t in canonical:
        tag_index(t)  # raises KeyError with the tag name
    return Track(
        track_id=parse_track_id(row[0].strip()),
        artist_id=row[1].strip(),
        album_id=row[2].strip(),
        path=check_relative_path(row[3].strip()),
        duration=float(row[4]),
        tags=canonical,
    )


def split_files(split_dir: str) -> dict:
    """Map split name -> TSV path in a `splits/split-N/` folder."""
    return {s: os.path.join(split_dir, f"autotagging_moodtheme-{s}.tsv") for s in SPLITS}


def label_matrix(tracks: list) -> np.ndarray:
    """Bool matrix [n_tracks, 56] in canonical tag order (the official ground-truth layout)."""
    return np.stack([t.label_vector() for t in tracks]).astype(bool) if tracks else np.zeros((0, NUM_TAGS), bool)


def write_split(path: str, tracks: list) -> None:
    """Write tracks in MTG's exact format (CRLF, one tag per column); used by the demo generator."""
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\r\n")
        w.writerow(HEADER)
        for t in tracks:
            w.writerow([t.name, t.artist_id, t.album_id, t.path, f"{t.duration:.1f}",
                        *(f"mood/theme---{tag}" for tag in t.tags)])
    os.replace(tmp, path)
