r"""Ensemble evaluated runs: a weighted average of their scores, weights chosen on validation.

Each `--run` folder is the `--out` of `python -m tfmood.evaluate` (it holds val_/test_predictions.npy and,
written by evaluate, the matching ground truth and track ids). Weights are non-negative and sum to 1, fixed
with `--weights` or chosen by `--method`: `mean` (uniform), `greedy` (Caruana's forward selection with
replacement), `simplex` (direct search; overfits with many members) or `auto` (default): each is scored by
k-fold cross-validation on the validation tracks and the best out-of-sample estimate wins. Both the
in-sample and the cross-validated scores are printed and saved. Thresholds are then fitted on the
ensembled validation scores.

    python -m tfmood.ensemble --run runs/effnet/eval --run runs/rexnet/eval --out runs/ensemble
    python -m tfmood.ensemble --run runs/mel/eval --run runs/wavenet/eval --weights 0.7 0.3 --out runs/hcmus
    python -m tfmood.ensemble --run A --run B --val-groundtruth SPLITS/autotagging_moodtheme-validation.tsv \
        --test-groundtruth SPLITS/autotagging_moodtheme-test.tsv --out runs/ens

`--out` receives ensemble.json (runs, weights, member and ensemble metrics) plus everything evaluate writes
(submission, thresholds.tsv, metrics.json, report), so an ensemble can itself be a `--run`.
"""

import argparse
import os

from tfmood.evaluation.ensemble import METHODS, average_snapshots, check_weights, select
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
    p.add_argument("--method", default="auto", choices=("auto", *METHODS),
                   help="how to choose the weights (default auto: best cross-validated estimate)")
    p.add_argument("--folds", type=int, default=5,
                   help="validation folds for the out-of-sample estimate (default 5; 0 skips it, not with auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    p.add_argument("--max-evals", type=int, default=200, help="PR-AUC evaluations per tuning stage")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--no-figure", dest="figure", action="store_false", help="skip report.png (saves ~1 s)")
    args = p.parse_args(argv)
    if args.folds == 0 and args.method == "auto" and args.weights is None:
        p.error("--method auto chooses by cross-validation: give --folds >= 2, or name a --method")
    if args.folds < 0 or args.folds == 1:
        p.error(f"--folds must be 0 or >= 2. Received: {args.folds}")
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
    if args.weights is not None:
        weights, choice = args.weights, None
    else:
        if args.folds > len(val_gt):
            raise SystemExit(f"error: --folds {args.folds} exceeds the {len(val_gt)} validation tracks")
        choice = select(val_preds, val_gt, args.method, args.folds, args.seed, args.max_evals)
        weights = choice["weights"]
    val, test = average_snapshots(val_preds, weights), average_snapshots(test_preds, weights)
    save_part(args.out, "val", val, val_gt, val_ids)
    save_part(args.out, "test", test, test_gt, test_ids)
    summary = {"runs": args.run, "weights": [float(w) for w in weights],
               "weights_source": "given" if choice is None else
               f"{choice['method']}, chosen on validation {RANKING_METRIC}"}
    if choice is not None:
        summary.update(method=choice["method"], folds=args.folds, fold_seed=args.seed,
                       estimates=choice["estimates"])
    results = evaluate_run(args.out, test, test_gt, val_predictions=val, val_groundtruth=val_gt,
                           title=f"tfmood ensemble of {len(args.run)} runs", extra={"ensemble": summary},
                           figure=args.figure)
    summary.update(validation=metrics_or_error(val_gt, val), test=results,
                   members={"validation": member_metrics(args.run, val_preds, val_gt),
                            "test": member_metrics(args.run, test_preds, test_gt)})
    save_json(os.path.join(args.out, "ensemble.json"), summary)
    if choice is not None:
        print(f"validation {RANKING_METRIC} by method (in-sample / {args.folds}-fold cross-validated):")
        for name, e in choice["estimates"].items():
            cv = "   n/a  " if e["cross_validated"] is None else f"{e['cross_validated']:.6f}"
            print(f"  {name:8s} {e['in_sample']:.6f} / {cv}{'  <- chosen' if name == choice['method'] else ''}")
    for run, w in zip(args.run, weights):
        print(f"weight {w:.3f}  {run}")
    print(format_table(results))
    print(f"Ensemble written to {args.out}")
    return summary


if __name__ == "__main__":
    main()
