#!/usr/bin/env python
"""Time the full-size NSynth WaveNet encoder (`tfmood.models.wavenet.encode`) on random audio.

Usage:
    python tools/bench_wavenet.py --seconds 4 --repeats 2

Prints seconds of compute per second of 16 kHz audio (the real-time factor) and the estimate for one 30 s
HCMUS excerpt; the first call (graph build, warm-up) is not counted.
"""

import argparse
import time

import numpy as np


def main(argv=None):
    from tfmood.models import wavenet

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=4.0, help="audio length per call (default 4)")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    model = wavenet.nsynth_encoder()
    audio = np.random.default_rng(0).uniform(-1, 1, int(args.seconds * wavenet.SAMPLE_RATE)).astype("float32")
    wavenet.encode(model, audio)
    start = time.perf_counter()
    for _ in range(args.repeats):
        wavenet.encode(model, audio)
    factor = (time.perf_counter() - start) / args.repeats / args.seconds
    print(f"{factor:.2f} s of compute per s of audio; a 30 s excerpt takes ~{30 * factor:.0f} s")


if __name__ == "__main__":
    main()
