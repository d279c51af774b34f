"""Frontend throughput (numpy vs TF vs Essentia) and audio-to-tags time of a 4-minute track.

    python tools/bench_frontend.py [--seconds 60] [--repeats 3] [--track-minutes 4] [--format mp3]

Part 1 computes MTG's 96-band log-mel of the same synthetic 12 kHz signal with tfmood's numpy frontend,
tfmood's TF frontend (a traced tf.function, batch 1) and Essentia's per-frame loop (MTG's
scripts/melspectrograms.py), and prints seconds of audio processed per second (best of --repeats).
Part 2 writes a synthetic 44.1 kHz stereo track, then times decode + MTG resampling, the numpy frontend, and
the full-size `vggish` on 16 crops of 960 frames (`python -m tfmood.predict`'s protocol), as a multiple of
real time. Prints a markdown table for BENCHMARKS.md.
"""

import argparse
import os
import tempfile
import time
import tfmood  # noqa: F401  (before TensorFlow: drops its benign start-up lines, tfmood/_quiet.py)

import numpy as np


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def signal(seconds, rate, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    y = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * noise + 0.1 * np.sin(2 * np.pi * (100 * t + 30 * t ** 2))
    return y.astype(np.float32)


def essentia_mel(waveform):
    import essentia.standard as es

    window, spectrum = es.Windowing(type="hann", normalized=False), es.Spectrum()
    mel = es.MelBands(numberBands=96, lowFrequencyBound=0, highFrequencyBound=6000, warpingFormula="slaneyMel",
                      weighting="linear", normalize="unit_tri", type="power", sampleRate=12000, inputSize=257)
    to_db = es.UnaryOperator(type="lin2db", scale=2)
    frames = es.FrameGenerator(waveform, frameSize=512, hopSize=256, startFromZero=False)
    return np.array([to_db(mel(spectrum(window(f)))) for f in frames]).T


def frontend_rows(seconds, repeats):
    import tensorflow as tf

    from tfmood.frontend import log_mel_numpy, log_mel_tf

    y = signal(seconds, 12000)
    traced = tf.function(log_mel_tf, input_signature=[tf.TensorSpec([None, None], tf.float32)])
    traced(y[None])  # trace outside the timing
    runs = {"numpy (tfmood.frontend.log_mel_numpy)": lambda: log_mel_numpy(y),
            "TF (tfmood.frontend.log_mel_tf, tf.function)": lambda: traced(y[None]).numpy()}
    try:
        import essentia.standard  # noqa: F401
        runs["Essentia (MTG's per-frame loop)"] = lambda: essentia_mel(y)
    except ImportError:
        print("essentia not installed: skipping its row")
    return {name: seconds / best_time(fn, repeats) for name, fn in runs.items()}


def tagging_rows(minutes, repeats, fmt):
    import soundfile as sf
    import tensorflow as tf

    from tfmood import models
    from tfmood.audio import load_audio
    from tfmood.frontend import log_mel_numpy
    from tfmood.protocol import Protocol

    seconds = minutes * 60
    stereo = np.stack([signal(seconds, 44100, 1), signal(seconds, 44100, 2)], axis=1)
    model = models.build("vggish")
    score = tf.function(lambda x: model(x, training=False))
    score(tf.zeros([16, 96, 960, 1]))  # trace outside the timing
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, f"track.{fmt}")
        sf.write(path, stereo, 44100)
        waveform = load_audio(path, resampler="mtg")
        mel = log_mel_numpy(waveform)
        stages = {"decode + MTG resampling": best_time(lambda: load_audio(path, resampler="mtg"), repeats),
                  "numpy frontend": best_time(lambda: log_mel_numpy(waveform), repeats),
                  "vggish, 16 x 960-frame crops": best_time(
                      lambda: score(Protocol().crops(mel[None])[0][..., None]).numpy(), repeats)}
    stages["total"] = sum(stages.values())
    return seconds, stages


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length for part 1 (default: 60)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, the best is kept (default: 3)")
    parser.add_argument("--track-minutes", type=float, default=4.0, help="track length for part 2 (default: 4)")
    parser.add_argument("--format", default="mp3", choices=["mp3", "flac", "wav", "ogg"], help="part 2 file type")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    rates = frontend_rows(args.seconds, args.repeats)
    base = rates.get("Essentia (MTG's per-frame loop)")
    print(f"\n| frontend ({args.seconds:g} s of 12 kHz audio) | audio s / s | vs Essentia |\n|---|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate / base:.1f}x |" if base else f"| {name} | {rate:,.0f} | - |")
    seconds, stages = tagging_rows(args.track_minutes, args.repeats, args.format)
    print(f"\n| audio to tags, {seconds / 60:g}-min 44.1 kHz stereo {args.format} | seconds | x real time |\n|---|---|---|")
    for name, spent in stages.items():
        print(f"| {name} | {spent:.2f} | {seconds / spent:,.0f}x |")


if __name__ == "__main__":
    main()
