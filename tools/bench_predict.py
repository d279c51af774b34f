"""Time to first result of `python -m tfmood.predict one.mp3`, before and after, in the same run.

    python tools/bench_predict.py [--checkpoint ../shared/jamendo/baseline/best_model.pth] [--runs 3]
        [--baseline-rev 21a56eb~1 [--baseline-rev 9aa10ce ...]]

Every side tags the same 30-s mp3 (tone chords, written here) with MTG's VGG-ish baseline exported by
its own code: a baseline is `git archive REV tfmood tools` unpacked into a scratch folder (put first on
PYTHONPATH), the candidate is this checkout. Runs alternate between the sides after one untimed warm-up
run each (warm page cache); the figure is wall time from process start to the first result line on stdout
(the process's exit, a little later, is also shown), with the process's CPU seconds (user + sys, less
sensitive to other load on the machine than wall time) and the 1-minute load average at its start.
Needs git and the checkpoint.
"""

import argparse
import os
import resource
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
    """(seconds to the first stdout line, seconds to exit, CPU seconds, that line)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "tfmood.predict", clip, "--model", model],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
    line = process.stdout.readline()
    first = time.perf_counter() - start
    process.communicate()
    total = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # only this child ran (and was waited for) meanwhile
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if process.returncode != 0 or not line.strip():
        raise RuntimeError(f"predict failed (exit {process.returncode}) with {model}")
    return first, total, cpu, line.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=os.path.join(REPO, "..", "shared", "jamendo", "baseline",
                                                             "best_model.pth"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-rev", action="append",
                        help="git revision of a baseline, repeatable (default: 21a56eb~1, the commit before the "
                             "protocol change)")
    args = parser.parse_args(argv)
    revs = args.baseline_rev or ["21a56eb~1"]
    with tempfile.TemporaryDirectory() as scratch:
        clip = os.path.join(scratch, "one.mp3")
        write_clip(clip)
        quiet = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        sides = {}
        for index, rev in enumerate(revs):
            root = checkout(rev, os.path.join(scratch, f"baseline{index}"))
            env = dict(quiet, PYTHONPATH=root + os.pathsep + quiet.get("PYTHONPATH", ""))
            sides[rev] = (export(root, args.checkpoint, os.path.join(scratch, f"old{index}"), env), env, root)
        new_env = dict(quiet, PYTHONPATH=REPO + os.pathsep + quiet.get("PYTHONPATH", ""))
        sides["candidate"] = (export(REPO, args.checkpoint, os.path.join(scratch, "new"), new_env), new_env, REPO)
        for model, env, cwd in sides.values():  # warm-up: page cache, Python bytecode caches
            time_predict(clip, model, env, cwd)
        times = {name: [] for name in sides}
        width = max(map(len, sides))
        for _ in range(args.runs):
            for name, (model, env, cwd) in sides.items():
                load = os.getloadavg()[0]
                first, total, cpu, line = time_predict(clip, model, env, cwd)
                times[name].append((first, total, cpu))
                print(f"{name:{width}s} first result {first:6.2f} s  exit {total:6.2f} s  cpu {cpu:5.2f} s  "
                      f"load {load:5.2f}  | {line.split(chr(9))[1]}", flush=True)
    medians = {name: [statistics.median(t[i] for t in runs) for i in range(3)] for name, runs in times.items()}
    for name, (first, total, cpu) in medians.items():
        print(f"{name:{width}s} medians of {args.runs}: first result {first:6.2f} s  exit {total:6.2f} s  "
              f"cpu {cpu:5.2f} s")
    candidate = medians["candidate"]
    for rev in revs:
        print(f"candidate vs {rev}: first result {medians[rev][0] / candidate[0]:.2f}x faster, "
              f"cpu {medians[rev][2] / candidate[2]:.2f}x less")
    return medians


if __name__ == "__main__":
    main()
