#!/usr/bin/env python
"""Convert MTG-Jamendo features into sharded TFRecords for tfmood.

Usage:
    # MTG's distributed mel-spectrograms (NN/ID.npy, float32 (96, T)):
    python tools/convert.py --splits mtg-jamendo-dataset/data/splits/split-0 \\
        --features-root melspecs/ --out records/jamendo-mel

    # NSynth WaveNet features ((16, T) or HCMUS's (1, T, 16)):
    python tools/convert.py --splits .../split-0 --features wavenet --features-root wavenet/ --out records/jamendo-wavenet

    # Raw audio (mp3/ogg/flac/wav) through the MTG mel frontend:
    python tools/convert.py --splits .../split-0 --features audio --features-root audio/ --out records/jamendo-audio

Re-running the same command resumes: finished shards are skipped. Bad tracks stop the conversion with a
list of every one (file and reason) unless --skip-bad is given, which records them in manifest.json.
"""

import argparse
import os
import sys

from tfmood.data.features import DEFAULT_BANDS, FEATURE_KINDS  # numpy only: argument errors come before TF loads


def _split_tsv(value):
    split, sep, path = value.partition("=")
    if not sep or not split or not path:
        raise argparse.ArgumentTypeError(f"expected SPLIT=PATH (e.g. train=my-train.tsv), got {value!r}")
    return split, path


def _positive(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--splits", help="folder with autotagging_moodtheme-{train,validation,test}.tsv")
    p.add_argument("--tsv", action="append", default=[], metavar="SPLIT=PATH", type=_split_tsv,
                   help="an explicit split file, e.g. train=my-train.tsv (repeatable)")
    p.add_argument("--features-root", required=True, help="root of the NN/ID.npy (or NN/ID.mp3) tree")
    p.add_argument("--features", default="mel", choices=FEATURE_KINDS.names(), help="feature kind (default: mel)")
    p.add_argument("--bands", type=_positive, help="expected band count (default: 96 mel/audio, 16 wavenet)")
    p.add_argument("--out", required=True, help="output folder, e.g. records/jamendo-mel")
    p.add_argument("--num-shards", type=_positive, default=16, help="shards per split (default: 16)")
    p.add_argument("--workers", type=_positive, default=None, help="parallel processes (default: CPU count)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"],
                   help="storage dtype; float16 halves size and read bandwidth (default: float32, exact)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad tracks, listing them in the manifest")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from tfmood.data import convert

    options = convert.Options(features_root=args.features_root, out_dir=args.out, kind=args.features,
                              bands=args.bands or DEFAULT_BANDS[args.features], dtype=args.dtype,
                              skip_bad=args.skip_bad)
    try:
        splits = convert.load_splits(args.splits, dict(args.tsv))
        manifest = convert.run(splits, options, num_shards=args.num_shards, workers=args.workers)
    except (convert.ConversionError, convert.FolderLocked, OSError, ValueError, LookupError) as e:
        # Bad tracks, refused input, a locked folder, unreadable or malformed split files: a sentence each.
        print(f"error: {e}", file=sys.stderr)
        return 1
    for split, s in manifest["splits"].items():
        print(f"{split}: {s['tracks']} tracks, {s['frames']} frames, {len(s['shards'])} shards, "
              f"{len(s['skipped'])} skipped")
    print(f"manifest: {os.path.join(args.out, convert.MANIFEST)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
