r"""Evaluate with MTG's official metrics; write the submission files, thresholds and a report.

Saved predictions (MTG's VGG-ish baseline with its shipped thresholds, which MTG fitted on test):
    python -m tfmood.evaluate --predictions ../shared/jamendo/results/baseline_vggish_predictions.npy \
        --groundtruth ../shared/jamendo/results/groundtruth.npy \
        --thresholds ../shared/jamendo/results/baseline_vggish_thresholds.txt --out runs/eval-vggish

Saved predictions, thresholds fitted on validation (labels from the split TSVs):
    python -m tfmood.evaluate --predictions test.npy --split-tsv SPLITS/autotagging_moodtheme-test.tsv \
        --val-predictions val.npy --val-split-tsv SPLITS/autotagging_moodtheme-validation.tsv --out runs/eval

A trained model (`.keras` file or SavedModel `saved_models/NAME[/VERSION]`) on converted records:
    python -m tfmood.evaluate --model runs/demo/best.keras --data records/demo --out runs/demo/eval
    python -m tfmood.evaluate --model saved_models/tagger --data records/split-0 --out runs/x/eval
    python -m tfmood.evaluate --model runs/x/epoch_20.keras --snapshots runs/x/epoch_18.keras \
        --data records/split-0 --segments 16 --crop-frames 960 --out runs/x/eval

A SavedModel is scored with its own scoring protocol (assets/tfmood.json, tfmood.protocol), the one its
signatures and `python -m tfmood.predict` apply; `--segments`/`--crop-frames` set it for `.keras` models.

`--out` receives predictions.npy + decisions.npy (submission), thresholds.tsv, metrics.json, results.tsv,
report.md, per_tag.tsv, report.png, and {val,test}_{predictions,groundtruth,track_ids}.npy for
`python -m tfmood.ensemble`.
"""

import argparse

import numpy as np

from tfmood.evaluation.labels import load_labels
from tfmood.evaluation.metrics import format_table
from tfmood.evaluation.run import evaluate_run, save_part
from tfmood.evaluation.thresholds import load_thresholds


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tfmood.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--no-figure", dest="figure", action="store_false", help="skip report.png (saves ~1 s)")
    saved = p.add_argument_group("saved predictions")
    saved.add_argument("--predictions", help="test scores .npy [n, 56], rows in the test TSV order")
    saved.add_argument("--groundtruth", "--split-tsv", dest="groundtruth",
                       help="test labels: a bool .npy [n, 56] or the test split TSV")
    saved.add_argument("--val-predictions", help="validation scores .npy, to fit thresholds on")
    saved.add_argument("--val-groundtruth", "--val-split-tsv", dest="val_groundtruth",
                       help="validation labels: .npy or the validation split TSV")
    saved.add_argument("--thresholds", help="thresholds TSV (tag<TAB>threshold) instead of fitting them")
    model = p.add_argument_group("trained model")
    model.add_argument("--model", help="a .keras file or a SavedModel folder saved_models/NAME[/VERSION]")
    model.add_argument("--snapshots", nargs="+", default=[], help="more checkpoints whose scores are averaged in")
    model.add_argument("--data", help="records folder (python -m tfmood.data.convert)")
    model.add_argument("--split", default="test", help="split to evaluate (default: test)")
    model.add_argument("--val-split", default="validation", help="split to fit thresholds on")
    model.add_argument("--segments", type=int,
                       help="evenly spaced crops averaged per track (default: a SavedModel's own protocol, "
                            "else 16)")
    model.add_argument("--crop-frames", type=int,
                       help="frames per crop (960 = 20.5 s; default: a SavedModel's own protocol, else 960)")
    model.add_argument("--batch-size", type=int, default=32, help="crops per model call")
    args = p.parse_args(argv)
    if (args.model is None) == (args.predictions is None):
        p.error("give either --predictions (saved scores) or --model (a trained model), not both or neither")
    if args.predictions and not args.groundtruth:
        p.error("--predictions needs --groundtruth (a .npy) or --split-tsv (the test split TSV)")
    if args.model and not args.data:
        p.error("--model needs --data, the records folder to score")
    if args.model and (args.groundtruth or args.val_predictions or args.val_groundtruth):
        p.error("with --model, labels come from the records: drop --groundtruth/--val-* options")
    if args.thresholds and args.val_predictions:
        p.error("give --thresholds or --val-predictions (to fit them), not both")
    if bool(args.val_predictions) != bool(args.val_groundtruth):
        p.error("--val-predictions and --val-groundtruth (or --val-split-tsv) go together")
    for name in ("segments", "crop_frames", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1. Received: {getattr(args, name)}")
    return args


def from_files(args) -> dict:
    """Both parts from saved arrays: {part: (predictions, groundtruth, track_ids)} (val may be absent)."""
    parts = {"test": (np.load(args.predictions), *load_labels(args.groundtruth))}
    if args.val_predictions:
        parts["val"] = (np.load(args.val_predictions), *load_labels(args.val_groundtruth))
    return parts


def from_model(args) -> dict:
    """Both parts scored by the model (and snapshots) on the records, in split-TSV order."""
    import tensorflow as tf

    from tfmood.data.inspect import explain_data_loss
    from tfmood.evaluation.scoring import score_split

    paths = [args.model, *args.snapshots]
    parts = {}
    for part, split in (("val", args.val_split), ("test", args.split)):
        try:
            ids, scores, labels, protocol = score_split(paths, args.data, split, args.crop_frames,
                                                        args.segments, args.batch_size)
        except ValueError as error:  # a protocol conflict, a bad asset: a sentence, not a traceback
            raise SystemExit(f"error: {error}") from None
        except tf.errors.DataLossError as error:  # TF's message names no file: find the damaged shard
            raise SystemExit(f"error: {explain_data_loss(args.data, error)}") from None
        parts[part] = (scores, labels, ids)
    args.protocol = protocol.to_dict()  # recorded in metrics.json (provenance)
    return parts


def provenance(args) -> dict:
    """Where the scores came from, recorded in metrics.json."""
    if args.model:
        return {"model": args.model, "snapshots": args.snapshots, "data": args.data, "split": args.split,
                "val_split": args.val_split, "protocol": getattr(args, "protocol", None),
                "thresholds": args.thresholds}
    return {"predictions": args.predictions, "groundtruth": args.groundtruth,
            "val_predictions": args.val_predictions, "thresholds": args.thresholds}


def main(argv=None) -> dict:
    args = parse_args(argv)
    parts = from_files(args) if args.predictions else from_model(args)
    for part, (predictions, groundtruth, track_ids) in parts.items():
        save_part(args.out, part, predictions, groundtruth, track_ids)
    val_predictions, val_groundtruth, _ = parts.get("val", (None, None, None))
    test_predictions, test_groundtruth, _ = parts["test"]
    results = evaluate_run(
        args.out, test_predictions, test_groundtruth,
        thresholds=load_thresholds(args.thresholds) if args.thresholds else None,
        val_predictions=val_predictions, val_groundtruth=val_groundtruth,
        title=f"tfmood evaluation: {args.model or args.predictions}", extra={"source": provenance(args)},
        figure=args.figure)
    print(format_table(results))
    if val_predictions is None and not args.thresholds:
        print("No thresholds (pass --thresholds or --val-predictions + --val-groundtruth): AUC metrics only, "
              "no decisions.npy.")
    print(f"Results and report written to {args.out}")
    return results


if __name__ == "__main__":
    main()
