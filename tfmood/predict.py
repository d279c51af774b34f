"""Tag audio files with an exported tfmood SavedModel.

    python -m tfmood.predict song.mp3 music/ --model saved_models/mtg-vggish [--version 2] [--top 5] [--json]
        [--segments 16] [--crop-frames 960]

Each file (directories are walked for mp3/ogg/flac/wav) is decoded to 12 kHz mono and turned into MTG's
96-band log-mel (tfmood.frontend); `--segments` evenly spaced crops of `--crop-frames` frames (shorter tracks
are repeated up to one crop) are scored by the model's `serving_default` signature and averaged.
Text output: one line per file with the top tags. `--json`: one JSON object per line and file with all 56
scores, and per-tag decisions (score > threshold) when the export ships assets/thresholds.tsv.
Unreadable files are reported on stderr and skipped; the exit status is 1 if any file failed.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

SIGNATURE = "serving_default"


def version_dir(model, version=None) -> Path:
    """The SavedModel folder: `model` itself, or its version `version` (default: the highest)."""
    model = Path(model)
    if (model / "saved_model.pb").is_file() and version is None:
        return model
    versions = sorted(int(p.name) for p in model.iterdir() if p.is_dir() and p.name.isdigit()) \
        if model.is_dir() else []
    if not versions:
        raise FileNotFoundError(f"No SavedModel at {model}: expected saved_model.pb or numbered version "
                                "folders (export one with `python -m tfmood.export`).")
    chosen = versions[-1] if version is None else int(version)
    if chosen not in versions:
        raise FileNotFoundError(f"Version {chosen} of {model} does not exist. Available: {versions}")
    return model / str(chosen)


def segment_crops(mel, crop_frames=960, segments=16) -> np.ndarray:
    """`segments` evenly spaced crops [n, bands, crop_frames] of mel (bands, frames); short tracks repeated.

    Starts are round(linspace(0, frames - crop, segments)), as in tfmood.export.segment_average.
    """
    if crop_frames < 1 or segments < 1:
        raise ValueError(f"crop_frames and segments must be >= 1. Received: {crop_frames}, {segments}")
    frames = mel.shape[1]
    if frames <= crop_frames:  # one crop covers the track: repeat it to full length, every crop would be equal
        return np.take(mel, np.arange(crop_frames) % frames, axis=1)[None]
    starts = np.round(np.linspace(0, frames - crop_frames, segments)).astype(int)
    return np.stack([mel[:, s: s + crop_frames] for s in starts])


class Tagger:
    """A loaded SavedModel: `scores(mel)` gives the 56 tag scores of one (96, frames) log-mel."""

    def __init__(self, path, crop_frames=960, segments=16):
        import tensorflow as tf

        self.path, self.crop_frames, self.segments = Path(path), int(crop_frames), int(segments)
        self._loaded = tf.saved_model.load(str(path))
        if SIGNATURE not in self._loaded.signatures:
            raise ValueError(f"{path} has no {SIGNATURE!r} signature; found {list(self._loaded.signatures)}.")
        self._serve = self._loaded.signatures[SIGNATURE]
        self.tags = self._read_tags()
        self.thresholds = self._read_thresholds()

    def _read_tags(self):
        from tfmood.tags import TAGS

        path = self.path / "assets" / "tags.txt"
        return tuple(path.read_text().split()) if path.is_file() else TAGS

    def _read_thresholds(self):
        from tfmood.export import threshold_vector

        path = self.path / "assets" / "thresholds.tsv"
        return threshold_vector(str(path), self.tags) if path.is_file() else None

    def scores(self, mel) -> np.ndarray:
        crops = segment_crops(mel, self.crop_frames, self.segments).astype(np.float32)
        return np.asarray(self._serve(mel=crops)["scores"]).mean(axis=0)


def result_record(path, scores, tags, thresholds=None) -> dict:
    """The JSON object for one file: every score, and decisions (score > threshold) when thresholds exist."""
    record = {"file": str(path), "scores": {t: round(float(s), 6) for t, s in zip(tags, scores)}}
    if thresholds is not None:
        record["decisions"] = [t for t, s, th in zip(tags, scores, thresholds) if s > th]
    return record


def top_line(path, scores, tags, top=5) -> str:
    order = np.argsort(-scores, kind="stable")[:top]
    return f"{path}\t" + "  ".join(f"{tags[i]} {scores[i]:.3f}" for i in order)


def predict_files(tagger, files, top=5, as_json=False, out=None, err=None) -> int:
    """Score every file, print one line each to `out` (errors to `err`); return the number of failures."""
    from tqdm import tqdm

    from tfmood.audio import AudioError
    from tfmood.frontend import audio_to_mel

    out, err = out or sys.stdout, err or sys.stderr
    failed = 0
    for path in tqdm(files, desc="tagging", unit="file", disable=len(files) < 2, file=err):
        try:
            scores = tagger.scores(audio_to_mel(path))
        except AudioError as error:
            tqdm.write(f"error: {error}", file=err)
            failed += 1
            continue
        line = json.dumps(result_record(path, scores, tagger.tags, tagger.thresholds)) if as_json \
            else top_line(path, scores, tagger.tags, top)
        tqdm.write(line, file=out)
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfmood.predict", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio files or folders to walk")
    parser.add_argument("--model", required=True, help="exported model folder, e.g. saved_models/mtg-vggish")
    parser.add_argument("--version", type=int, help="model version (default: the highest)")
    parser.add_argument("--top", type=int, default=5, help="tags shown per file (default: 5)")
    parser.add_argument("--json", action="store_true", help="one JSON object per file, all scores")
    parser.add_argument("--segments", type=int, default=16, help="crops averaged per track (default: 16)")
    parser.add_argument("--crop-frames", type=int, default=960, help="frames per crop (default: 960)")
    args = parser.parse_args(argv)
    for name in ("top", "segments", "crop_frames"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1. Received: {getattr(args, name)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from tfmood.audio import find_audio_files

    files = find_audio_files(args.inputs)
    if not files:
        parser.error(f"no audio files (mp3, ogg, flac, wav) found in {args.inputs}")
    tagger = Tagger(version_dir(args.model, args.version), args.crop_frames, args.segments)
    failed = predict_files(tagger, files, args.top, args.json)
    if failed:
        print(f"{failed} of {len(files)} files could not be read.", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
