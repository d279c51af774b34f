"""MTG's official MediaEval metrics (`scripts/mediaeval/evaluate.py`), with clearer errors.

Ranking metric: `PR-AUC-macro` (sklearn's average precision, not a trapezoid area). Thresholded metrics
need `decisions` (bool), typically `predictions > thresholds` with thresholds fitted on validation.
"""

import numpy as np
from sklearn import metrics as skm

from tfmood.tags import NUM_TAGS, TAGS

AVERAGES = ("macro", "micro")
AUC_KEYS = tuple(f"{m}-{a}" for a in AVERAGES for m in ("ROC-AUC", "PR-AUC"))
METRIC_KEYS = tuple(
    f"{m}-{a}" for a in AVERAGES for m in ("ROC-AUC", "PR-AUC", "precision", "recall", "F-score"))
RANKING_METRIC = "PR-AUC-macro"


def check_matrices(groundtruth, **others) -> np.ndarray:
    """Validate `groundtruth` as a [n, 56] 0/1 matrix and each other matrix against its shape."""
    gt = np.asarray(groundtruth)
    if gt.ndim != 2 or gt.shape[1] != NUM_TAGS or gt.shape[0] == 0:
        raise ValueError(f"groundtruth must have shape [n_tracks, {NUM_TAGS}] with n_tracks >= 1. "
                         f"Received: {gt.shape}")
    if not np.isin(gt, (0, 1)).all():
        raise ValueError("groundtruth must be bool or 0/1; it holds other values.")
    for name, value in others.items():
        if value is not None and np.shape(value) != gt.shape:
            raise ValueError(f"{name} shape {np.shape(value)} doesn't match the groundtruth {gt.shape}: "
                             f"rows must be the same tracks in the same order, columns the {NUM_TAGS} tags.")
    return gt.astype(bool)


def undefined_tags(groundtruth) -> list:
    """Tags whose column is all-negative or all-positive (ROC-AUC is undefined for them)."""
    positives = np.asarray(groundtruth, bool).sum(axis=0)
    n = len(groundtruth)
    return [(TAGS[i], int(p)) for i, p in enumerate(positives) if p == 0 or p == n]


def official_metrics(groundtruth, predictions, decisions=None) -> dict:
    """The official metrics, keys exactly as MTG's scorer: `ROC-AUC-macro`, `PR-AUC-macro`, ... `-micro`.

    Without `decisions`, only the four AUC keys. Raises `ValueError` on shape mismatches and on tags
    with no positive (or no negative) track, naming them.
    """
    gt = check_matrices(groundtruth, predictions=predictions, decisions=decisions)
    predictions = np.asarray(predictions)
    if not np.isfinite(predictions).all():
        raise ValueError(f"predictions hold {np.count_nonzero(~np.isfinite(predictions))} NaN/inf values.")
    bad = undefined_tags(gt)
    if bad:
        listed = ", ".join(f"{t} ({p}/{len(gt)} positive)" for t, p in bad)
        raise ValueError(f"ROC-AUC is undefined for tags with no positive or no negative track: {listed}. "
                         f"Evaluate on a split containing every tag (split-0 test has all {NUM_TAGS}).")
    results = {}
    for average in AVERAGES:
        results[f"ROC-AUC-{average}"] = float(skm.roc_auc_score(gt, predictions, average=average))
        results[f"PR-AUC-{average}"] = float(skm.average_precision_score(gt, predictions, average=average))
        if decisions is not None:
            p, r, f, _ = skm.precision_recall_fscore_support(gt, np.asarray(decisions, bool), average=average)
            results.update({f"precision-{average}": float(p), f"recall-{average}": float(r),
                            f"F-score-{average}": float(f)})
    return {k: results[k] for k in METRIC_KEYS if k in results}


def pr_auc_macro(groundtruth, predictions) -> float:
    """The ranking metric alone, fast (`average_precision_per_tag`): for tuning ensemble weights."""
    return float(average_precision_per_tag(groundtruth, predictions).mean())


def format_metrics(results: dict) -> str:
    """One `metric<TAB>value` line per metric, six decimals: the layout of MTG's results TSV files."""
    return "".join(f"{k}\t{v:.6f}\n" for k, v in results.items())


def format_table(results: dict) -> str:
    """Aligned `metric  value` lines for the terminal (MTG's scorer prints the same)."""
    return "\n".join(f"{k:<16} {v:.6f}" for k, v in results.items())


def average_precision_per_tag(groundtruth, predictions) -> np.ndarray:
    """Per-tag average precision [56]: sklearn's `average_precision_score` values (to float rounding),
    several times faster: for searches that evaluate thousands of candidates (ensemble selection).
    Official figures still come from sklearn.

    AP = (1/P) * sum over positive tracks i of precision(s_i), with precision at threshold s_i =
    #positives scoring >= s_i / #tracks scoring >= s_i (sklearn scores tied tracks at one threshold,
    which ">=" reproduces). Only the positives are visited: two binary searches per tag, no full scan.
    """
    gt = np.asarray(groundtruth, bool)
    predictions = np.asarray(predictions, np.float64)
    ranked = np.sort(predictions, axis=0)  # ascending, all tags at once
    n, tags = gt.shape
    ap = np.zeros(tags)
    for t in range(tags):
        positives = np.sort(predictions[gt[:, t], t])
        if len(positives) == 0:
            continue
        at_least = n - np.searchsorted(ranked[:, t], positives, side="left")
        hits = len(positives) - np.searchsorted(positives, positives, side="left")
        ap[t] = np.mean(hits / at_least)
    return ap
