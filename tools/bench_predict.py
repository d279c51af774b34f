"""Time to first result of `python -m tfmood.predict one.mp3`, before and after, in the same run.

    python tools/bench_predict.py [--checkpoint ../shared/jamendo/baseline/best_model.pth] [--runs 3]
        [--baseline-rev 21a56eb~1]

Both sides tag the same 30-s mp3 (tone chords, written here) with MTG's VGG-ish baseline exported by
their own code: the baseline is `git archive BASELINE_REV tfmood tools` unpacked into a scratch folder
(put first on PYTHONPATH), the candidate is this checkout. Runs alternate baseline/candidate after one
untimed warm-up run each (warm page cache); the figure is wall time from process start to the first
result line on stdout (the process's exit, a little later, is also shown). Needs git and the checkpoint.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_clip(path, seconds=30, rate=44100):
    import soundfile as sf

    t = np.arange(seconds * rate) / rate
    y = sum(np.sin(2 * np.pi * f * t) * np.exp(-((t * 1.9 + k) % 1.3)) for k, f in enumerate((220, 277, 330)))
    sf.write(path, (0.2 * y / 3).astype(np.float32), rate, format="MP3")


def checkout(rev, folder):
    archive = subprocess.run(["git", "-C", REPO, "archive", rev, "tfmood", "tools"], check=True,
                             capture_output=True).stdout
    os.makedirs(folder)
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def export(code_root, checkpoint, out, env):
    subprocess.run([sys.executable, os.path.join(code_root, "tools", "import_mtg_baseline.py"), checkpoint,
                    "--out", out], check=True, capture_output=True, env=env, cwd=code_root)
    return os.path.join(out, "mtg-vggish")


def time_predict(clip, model, env, cwd):
    """(seconds to the first stdout line, seconds to exit, that line)."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "tfmood.predict", clip, "--model", model],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
    line = process.stdout.readline()
    first = time.perf_counter() - start
    process.communicate()
    if process.returncode != 0 or not line.strip():
        raise RuntimeError(f"predict failed (exit {process.returncode}) with {model}")
    return first, time.perf_counter() - start, line.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=os.path.join(REPO, "..", "shared", "jamendo", "baseline",
                                                             "best_model.pth"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-rev", default="21a56eb~1",
                        help="git revision of the baseline (default: the commit before the protocol change)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        clip = os.path.join(scratch, "one.mp3")
        write_clip(clip)
        old_root = checkout(args.baseline_rev, os.path.join(scratch, "baseline"))
        quiet = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        old_env = dict(quiet, PYTHONPATH=old_root + os.pathsep + quiet.get("PYTHONPATH", ""))
        new_env = dict(quiet, PYTHONPATH=REPO + os.pathsep + quiet.get("PYTHONPATH", ""))
        sides = {"baseline": (export(old_root, args.checkpoint, os.path.join(scratch, "old"), old_env),
                              old_env, old_root),
                 "candidate": (export(REPO, args.checkpoint, os.path.join(scratch, "new"), new_env), new_env, REPO)}
        for model, env, cwd in sides.values():  # warm-up: page cache, Python bytecode caches
            time_predict(clip, model, env, cwd)
        times = {name: [] for name in sides}
        for _ in range(args.runs):
            for name, (model, env, cwd) in sides.items():
                first, total, line = time_predict(clip, model, env, cwd)
                times[name].append((first, total))
                print(f"{name:9s} first result {first:6.2f} s  exit {total:6.2f} s  | {line.split(chr(9))[1]}",
                      flush=True)
    medians = {name: statistics.median(t[0] for t in runs) for name, runs in times.items()}
    for name, value in medians.items():
        print(f"{name:9s} median time to first result {value:6.2f} s ({args.runs} runs)")
    print(f"speed-up {medians['baseline'] / medians['candidate']:.2f}x")
    return medians


if __name__ == "__main__":
    main()
