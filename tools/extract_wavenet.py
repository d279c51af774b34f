#!/usr/bin/env python
"""Extract NSynth WaveNet-encoder features (HCMUS 2020) from an MTG-layout audio tree.

Usage:
    # NSynth checkpoint from download.magenta.tensorflow.org/models/nsynth/wavenet-ckpt.tar:
    python tools/extract_wavenet.py audio/ wavenet/ --checkpoint wavenet-ckpt/model.ckpt-200000

    # then:
    python tools/convert.py --splits .../split-0 --features wavenet --features-root wavenet/ \\
        --out records/jamendo-wavenet

AUDIO_DIR/NN/ID.mp3 becomes OUT_DIR/NN/ID.npy, float32 (16, frames) at 31.25 frames/s (`--layout 1xTx16` writes
HCMUS's (1, frames, 16) instead). Each track is decoded at 16 kHz mono; a `--segment-seconds` window (default 30 s,
the centre of the track; HCMUS took a random one, use `--position random --seed N`) is encoded, 0 = whole track.
Existing outputs are skipped, so re-running resumes. Failed files are listed at the end and the exit status is 1.
`--random-init` runs an untrained encoder (for tests only).
"""

import argparse
import os
import sys

import numpy as np

from tfmood.models import wavenet

LAYOUTS = {"16xT": lambda f: f, "1xTx16": lambda f: f.T[None]}
POSITIONS = ("center", "start", "random")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("audio_dir", help="root of the NN/ID.<ext> audio tree (mp3, ogg, flac, wav)")
    p.add_argument("out_dir", help="output root; NN/ID.npy mirrors the audio tree")
    p.add_argument("--checkpoint", help="NSynth TF1 checkpoint prefix, e.g. wavenet-ckpt/model.ckpt-200000")
    p.add_argument("--random-init", action="store_true", help="no checkpoint: random weights (tests only)")
    p.add_argument("--ema", choices=["auto", "yes", "no"], default="auto",
                   help="use the checkpoint's ExponentialMovingAverage weights (default: auto = when present)")
    p.add_argument("--segment-seconds", type=float, default=30.0, help="window to encode; 0 = whole track (default 30)")
    p.add_argument("--position", choices=POSITIONS, default="center", help="where the window sits (default: center)")
    p.add_argument("--seed", type=int, default=0, help="seed for --position random (default 0)")
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="16xT", help="stored array layout (default 16xT)")
    p.add_argument("--channels", type=int, default=128, help=argparse.SUPPRESS)  # tiny random-init tests
    p.add_argument("--layers", type=int, default=30, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.checkpoint and not args.random_init:
        p.error("--checkpoint is required (features of an untrained encoder are meaningless); "
                "pass --random-init only for tests")
    if args.segment_seconds < 0:
        p.error(f"--segment-seconds must be >= 0. Received: {args.segment_seconds}")
    return args


def window(waveform, seconds, position, rng):
    """The `seconds`-long excerpt of `waveform` at `position` (the whole waveform when shorter or seconds=0)."""
    length = int(round(seconds * wavenet.SAMPLE_RATE))
    if not length or waveform.size <= length:
        return waveform
    start = {"start": 0, "center": (waveform.size - length) // 2,
             "random": int(rng.integers(0, waveform.size - length + 1))}[position]
    return waveform[start:start + length]


def output_path(audio_path, audio_dir, out_dir):
    relative = os.path.splitext(os.path.relpath(audio_path, audio_dir))[0]
    return os.path.join(out_dir, relative + ".npy")


def save_atomic(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}.npy"
    np.save(tmp, array)
    os.replace(tmp, path)


def extract_one(model, path, out_path, args, rng):
    from tfmood.audio import load_audio

    excerpt = window(load_audio(path, sample_rate=wavenet.SAMPLE_RATE), args.segment_seconds, args.position, rng)
    save_atomic(out_path, LAYOUTS[args.layout](wavenet.encode(model, excerpt)))


def build_encoder(args):
    model = wavenet.nsynth_encoder(channels=args.channels, num_layers=args.layers)
    if args.checkpoint:
        use_ema = {"auto": None, "yes": True, "no": False}[args.ema]
        wavenet.load_nsynth_checkpoint(model, args.checkpoint, use_ema=use_ema)
    return model


def main(argv=None):
    from tqdm import tqdm
    from tfmood.audio import find_audio_files

    args = parse_args(argv)
    if not os.path.isdir(args.audio_dir):
        print(f"error: audio folder not found: {args.audio_dir}", file=sys.stderr)
        return 2
    model, rng, failed = build_encoder(args), np.random.default_rng(args.seed), []
    files = find_audio_files([args.audio_dir])
    todo = [(f, output_path(f, args.audio_dir, args.out_dir)) for f in files]
    todo = [(f, out) for f, out in todo if not os.path.exists(out)]
    print(f"{len(files)} audio files, {len(files) - len(todo)} already extracted")
    for path, out_path in tqdm(todo, unit="track", desc="wavenet"):
        try:
            extract_one(model, path, out_path, args, rng)
        except (OSError, ValueError) as error:  # AudioError is a ValueError; report every file, stop on none
            failed.append(f"{path}: {error}")
    for line in failed:
        print(f"failed: {line}", file=sys.stderr)
    print(f"{len(todo) - len(failed)} extracted, {len(failed)} failed -> {args.out_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
