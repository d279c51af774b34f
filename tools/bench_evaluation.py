"""Time the evaluation on real-size data: MTG's split-0 test ground truth + VGG-ish baseline scores.

    python tools/bench_evaluation.py [--results ../shared/jamendo/results] [--repeats 3]

Prints seconds per call (best of --repeats) for the official metrics, threshold fitting, a full
`evaluate_run` with and without the figure, the fast vs sklearn PR-AUC-macro (ratio measured in the same
run), ensemble weight tuning for 2 and 3 members (the baseline plus noisy copies of it), and ensemble
selection at library sizes `--members` (default 12,24,50; one run each): every method fitted once and
`auto` (5-fold cross-validation of mean, greedy and simplex, then the chosen one refitted).
"""

import argparse
import tempfile
import time

import numpy as np
from sklearn.metrics import average_precision_score

from tfmood.evaluation import evaluate_run, fit_thresholds, official_metrics, tune_weights
from tfmood.evaluation.ensemble import select
from tfmood.evaluation.metrics import pr_auc_macro
from tfmood.evaluation.thresholds import decide


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="../shared/jamendo/results", help="folder with MTG's result files")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--members", default="12,24,50", help="ensemble library sizes to time (comma-separated)")
    p.add_argument("--only-ensembles", action="store_true", help="skip the metric/threshold timings")
    args = p.parse_args(argv)
    gt = np.load(f"{args.results}/groundtruth.npy")
    pred = np.load(f"{args.results}/baseline_vggish_predictions.npy").astype(np.float64)
    rng = np.random.default_rng(0)
    noisy = [np.clip(pred + rng.normal(0, 0.05, pred.shape), 0, 1) for _ in range(2)]
    thr = fit_thresholds(gt, pred)
    if not args.only_ensembles:
        with tempfile.TemporaryDirectory() as out:
            run(args.repeats, gt, pred, noisy, thr, out)
    ensemble_scaling(gt, pred, [int(m) for m in args.members.split(",") if m])
    return 0


def ensemble_scaling(gt, pred, sizes):
    """Seconds to choose weights for `sizes` members: noisy copies of the baseline (correlated errors)."""
    rng = np.random.default_rng(1)
    for count in sizes:
        members = [np.clip(pred + rng.normal(0, 0.05, pred.shape), 0, 1) for _ in range(count)]
        line = []
        for method in ("mean", "greedy", "simplex"):
            wall, cpu = time.perf_counter(), time.process_time()
            tune_weights(members, gt, method=method)
            line.append(f"{method} {time.perf_counter() - wall:.1f} s ({time.process_time() - cpu:.1f} s CPU)")
        wall, cpu = time.perf_counter(), time.process_time()
        choice = select(members, gt, "auto", folds=5)
        line.append(f"auto (5-fold CV, chose {choice['method']}) {time.perf_counter() - wall:.1f} s "
                    f"({time.process_time() - cpu:.1f} s CPU)")
        # CPU seconds too: on a shared machine they stay put while wall time stretches with the load
        print(f"ensemble of {count:3d} members: " + ", ".join(line))


def run(repeats, gt, pred, noisy, thr, out):
    timings = {
        "official_metrics (10 keys)": lambda: official_metrics(gt, pred, decide(pred, thr)),
        "fit_thresholds (56 tags)": lambda: fit_thresholds(gt, pred),
        "evaluate_run, figure": lambda: evaluate_run(out, pred, gt, val_predictions=pred, val_groundtruth=gt),
        "evaluate_run, no figure": lambda: evaluate_run(out, pred, gt, val_predictions=pred, val_groundtruth=gt,
                                                        figure=False),
        "PR-AUC-macro, sklearn": lambda: average_precision_score(gt, pred, average="macro"),
        "PR-AUC-macro, fast": lambda: pr_auc_macro(gt, pred),
        "tune_weights, 2 members": lambda: tune_weights([pred, noisy[0]], gt),
        "tune_weights, 3 members": lambda: tune_weights([pred, *noisy], gt),
    }
    print(f"{gt.shape[0]} tracks x {gt.shape[1]} tags, best of {repeats}")
    results = {name: best_of(repeats, fn) for name, fn in timings.items()}
    for name, seconds in results.items():
        print(f"{name:<28} {seconds:8.3f} s")
    print(f"fast/sklearn PR-AUC speed-up: {results['PR-AUC-macro, sklearn'] / results['PR-AUC-macro, fast']:.1f}x")
    print("tuned weights, 3 members:", np.round(tune_weights([pred, *noisy], gt)[0], 3).tolist())


if __name__ == "__main__":
    main()
