"""A run directory: the arrays a run keeps (so ensembles can reuse them) and the evaluation it writes.

Layout of `out_dir`:
    val_predictions.npy, val_groundtruth.npy, val_track_ids.npy     validation scores and labels
    test_predictions.npy, test_groundtruth.npy, test_track_ids.npy  test scores and labels
    thresholds.tsv                                                  per-tag thresholds (MTG format)
    predictions.npy, decisions.npy                                  the official submission files
    metrics.json, results.tsv, report.md, per_tag.tsv, report.png   the evaluation report
Files of an unknown part (e.g. no validation scores) are simply absent.
"""

import os

import numpy as np

from tfmood.evaluation.files import save_npy
from tfmood.evaluation.labels import load_labels, reorder_rows
from tfmood.evaluation.metrics import official_metrics
from tfmood.evaluation.report import write_report
from tfmood.evaluation.submission import write_submission
from tfmood.evaluation.thresholds import decide, fit_thresholds, save_thresholds
from tfmood.tags import NUM_TAGS

PARTS = ("val", "test")
ARRAYS = {"predictions": np.float64, "groundtruth": bool, "track_ids": np.int64}
THRESHOLDS_FILE = "thresholds.tsv"


def save_part(out_dir: str, part: str, predictions, groundtruth=None, track_ids=None) -> None:
    """Save `<part>_{predictions,groundtruth,track_ids}.npy` (the ones given)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}. Received: {part!r}")
    for name, value in (("predictions", predictions), ("groundtruth", groundtruth), ("track_ids", track_ids)):
        if value is not None:
            save_npy(os.path.join(out_dir, f"{part}_{name}.npy"), np.asarray(value, dtype=ARRAYS[name]))


def load_part(run_dir: str, part: str) -> dict:
    """`{"predictions": [n, 56], "groundtruth": [n, 56] or None, "track_ids": [n] or None}`."""
    path = lambda name: os.path.join(run_dir, f"{part}_{name}.npy")  # noqa: E731
    if not os.path.exists(path("predictions")):
        raise FileNotFoundError(f"{path('predictions')} not found: {run_dir} is not a run directory written "
                                f"by `python -m tfmood.evaluate` (or it was run without {part} scores).")
    part_arrays = {name: np.load(path(name)) if os.path.exists(path(name)) else None for name in ARRAYS}
    predictions = part_arrays["predictions"]
    if predictions.ndim != 2 or predictions.shape[1] != NUM_TAGS:
        raise ValueError(f"{path('predictions')}: shape must be [n_tracks, {NUM_TAGS}]. "
                         f"Received: {predictions.shape}")
    return part_arrays


def metrics_or_error(groundtruth, predictions) -> dict:
    """AUC metrics, or `{"error": reason}` when undefined (a side report must not fail the run)."""
    try:
        return official_metrics(groundtruth, predictions)
    except ValueError as e:  # e.g. a small validation split without some tag: say so, don't fail the run
        return {"error": str(e)}


def evaluate_run(out_dir: str, test_predictions, test_groundtruth, thresholds=None,
                 val_predictions=None, val_groundtruth=None, title: str = "tfmood evaluation",
                 extra: dict = None, figure: bool = True) -> dict:
    """Thresholds -> decisions -> official metrics -> submission, report and `metrics.json` in `out_dir`.

    Thresholds: given, else fitted on the validation scores/labels, else none (AUC metrics only and no
    submission, since `decisions.npy` needs thresholds). Returns the official metrics dict.
    """
    extra = dict(extra or {})
    if thresholds is None and val_predictions is not None and val_groundtruth is not None:
        thresholds = fit_thresholds(val_groundtruth, val_predictions)
        extra["thresholds"] = "fitted on validation"
    if val_predictions is not None and val_groundtruth is not None:
        extra["validation"] = metrics_or_error(val_groundtruth, val_predictions)
    decisions = None if thresholds is None else decide(test_predictions, thresholds)
    results = official_metrics(test_groundtruth, test_predictions, decisions)
    if thresholds is not None:
        save_thresholds(os.path.join(out_dir, THRESHOLDS_FILE), thresholds)
        write_submission(out_dir, test_predictions, decisions)
    extra.setdefault("thresholds", "given" if thresholds is not None else "none (AUC metrics only)")
    extra["test_tracks"] = int(len(test_groundtruth))
    write_report(out_dir, test_groundtruth, test_predictions, thresholds, results, title, extra, figure)
    return results


def collect_part(run_dirs: list, part: str, labels_path: str = None) -> tuple:
    """One part of several runs, aligned: `(predictions list, groundtruth, track_ids or None)`.

    Labels come from `labels_path` (.npy or split TSV) or else from the first run's saved ground truth.
    Runs that saved track ids are put in the labels' track order; others must have as many rows.
    """
    loaded = [load_part(d, part) for d in run_dirs]
    if labels_path:
        groundtruth, track_ids = load_labels(labels_path)
    elif loaded[0]["groundtruth"] is not None:
        groundtruth, track_ids = loaded[0]["groundtruth"], loaded[0]["track_ids"]
    else:
        raise ValueError(f"{run_dirs[0]} has no {part}_groundtruth.npy: pass the {part} labels "
                         f"(--{part}-groundtruth, a .npy or the split TSV).")
    predictions = []
    for run_dir, arrays in zip(run_dirs, loaded):
        scores = arrays["predictions"]
        if track_ids is not None and arrays["track_ids"] is not None:
            (scores,) = reorder_rows(arrays["track_ids"], track_ids, scores)
        elif len(scores) != len(groundtruth):
            raise ValueError(f"{run_dir}: {part} predictions have {len(scores)} rows but the labels have "
                             f"{len(groundtruth)}.")
        predictions.append(scores)
    return predictions, groundtruth, track_ids
