r"""Ensemble evaluated runs: weighted average of their scores, weights tuned on validation PR-AUC-macro.

Each `--run` folder is the `--out` of `python -m tfmood.evaluate` (it holds val_/test_predictions.npy and,
written by evaluate, the matching ground truth and track ids). Weights are non-negative and sum to 1;
tuned (default) or fixed with `--weights`. Thresholds are then fitted on the ensembled validation scores.

    python -m tfmood.ensemble --run runs/effnet/eval --run runs/rexnet/eval --out runs/ensemble
    python -m tfmood.ensemble --run runs/mel/eval --run runs/wavenet/eval --weights 0.7 0.3 --out runs/hcmus
    python -m tfmood.ensemble --run A --run B --val-groundtruth SPLITS/autotagging_moodtheme-validation.tsv \
        --test-groundtruth SPLITS/autotagging_moodtheme-test.tsv --out runs/ens

`--out` receives ensemble.json (runs, weights, member and ensemble metrics) plus everything evaluate writes
(submission, thresholds.tsv, metrics.json, report), so an ensemble can itself be a `--run`.
"""

import argparse
import os

from tfmood.evaluation.ensemble import average_snapshots, check_weights, tune_weights
from tfmood.evaluation.files import save_json
from tfmood.evaluation.metrics import RANKING_METRIC, format_table
from tfmood.evaluation.run import collect_part, evaluate_run, metrics_or_error, save_part


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tfmood.ensemble", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--run", action="append", required=True, help="a run folder (repeat, one per member)")
    p.add_argument("--weights", type=float, nargs="+", help="fixed weights, one per --run (normalised to sum 1)")
    p.add_argument("--val-groundtruth", help="validation labels (.npy or split TSV); default: the first run's")
    p.add_argument("--test-groundtruth", help="test labels (.npy or split TSV); default: the first run's")
    p.add_argument("--max-evals", type=int, default=200, help="PR-AUC evaluations per tuning stage")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--no-figure", dest="figure", action="store_false", help="skip report.png (saves ~1 s)")
    args = p.parse_args(argv)
    if args.weights is not None:
        try:
            args.weights = check_weights(args.weights, len(args.run))
        except ValueError as e:
            p.error(f"--weights: {e}")
    return args


def member_metrics(run_dirs, predictions, groundtruth) -> list:
    """Each member's AUC metrics on one part (validation or test) of the aligned data."""
    return [{"run": d, **metrics_or_error(groundtruth, p)} for d, p in zip(run_dirs, predictions)]


def main(argv=None) -> dict:
    args = parse_args(argv)
    val_preds, val_gt, val_ids = collect_part(args.run, "val", args.val_groundtruth)
    test_preds, test_gt, test_ids = collect_part(args.run, "test", args.test_groundtruth)
    weights = args.weights if args.weights is not None else tune_weights(val_preds, val_gt, args.max_evals)[0]
    val, test = average_snapshots(val_preds, weights), average_snapshots(test_preds, weights)
    save_part(args.out, "val", val, val_gt, val_ids)
    save_part(args.out, "test", test, test_gt, test_ids)
    summary = {"runs": args.run, "weights": [float(w) for w in weights],
               "weights_source": "given" if args.weights is not None else f"tuned on validation {RANKING_METRIC}"}
    results = evaluate_run(args.out, test, test_gt, val_predictions=val, val_groundtruth=val_gt,
                           title=f"tfmood ensemble of {len(args.run)} runs", extra={"ensemble": summary},
                           figure=args.figure)
    summary.update(validation=metrics_or_error(val_gt, val), test=results,
                   members={"validation": member_metrics(args.run, val_preds, val_gt),
                            "test": member_metrics(args.run, test_preds, test_gt)})
    save_json(os.path.join(args.out, "ensemble.json"), summary)
    for run, w in zip(args.run, weights):
        print(f"weight {w:.3f}  {run}")
    print(format_table(results))
    print(f"Ensemble written to {args.out}")
    return summary


if __name__ == "__main__":
    main()
