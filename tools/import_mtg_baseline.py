"""Port MTG's published VGG-ish baseline (PyTorch best_model.pth) to a tfmood SavedModel.

    python tools/import_mtg_baseline.py ../shared/jamendo/baseline/best_model.pth --name mtg-vggish \\
        [--out saved_models] [--version N] [--keras mtg-vggish.keras] \\
        [--thresholds ../shared/jamendo/results/baseline_vggish_thresholds.txt]

The weights come from MTG/mtg-jamendo-dataset (scripts/baseline/models/best_model.pth, Apache-2.0). They are
read without executing pickled code (tfmood's restricted, bounds-checked reader; never torch.load) and copied
onto `tfmood.models.build("vggish")`. The export is tfmood.export.export_model:
saved_models/NAME/<version>/ with `serving_default` (mel) and `serve_waveform` signatures.

--thresholds: MTG ships per-tag thresholds (`mood/theme---tag<TAB>value`), but they were fitted on the *test*
labels, so decisions made with them overstate P/R/F on the test split. They are exported only when asked for.
Never commit the weights or the export.
"""

import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="MTG's best_model.pth (a PyTorch state dict)")
    parser.add_argument("--name", default="mtg-vggish", help="model name (default: mtg-vggish)")
    parser.add_argument("--out", default="saved_models", help="SavedModel base directory (default: saved_models)")
    parser.add_argument("--version", type=int, help="version number (default: highest existing + 1)")
    parser.add_argument("--thresholds", help="tag<TAB>threshold file to ship (MTG's were fitted on test labels)")
    parser.add_argument("--keras", help="also save the ported model as this .keras file")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        parser.error(f"checkpoint {args.checkpoint!r} does not exist")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from tfmood import mtg_baseline

    try:  # the file is read and checked (numpy only) before TensorFlow is imported
        state = mtg_baseline.load_mtg_state_dict(args.checkpoint)
    except mtg_baseline.CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    from tfmood.export import export_model

    try:
        model = mtg_baseline.load_mtg_vggish(state)
    except mtg_baseline.CheckpointError as e:
        print(f"error: {args.checkpoint}: {e}", file=sys.stderr)
        return None
    if args.keras:
        tmp = f"{args.keras}.tmp.keras"  # Keras insists on the .keras suffix
        model.save(tmp)
        os.replace(tmp, args.keras)
    path = export_model(model, args.name, base_dir=args.out, thresholds=args.thresholds, version=args.version)
    print(path)
    return path


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
