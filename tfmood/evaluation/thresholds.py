"""Per-tag decision thresholds, as MTG's `calculate_decisions.py`, and their TSV file.

Each tag's threshold is the score that maximises that tag's F-score along `precision_recall_curve`
(NaN F -> 0, first argmax); decisions are `scores > threshold` (strict). Fit on **validation**:
MTG's shipped baseline thresholds were fitted on the test labels, which flatters its P/R/F.
"""

import warnings

import numpy as np
from sklearn.metrics import precision_recall_curve

from tfmood.evaluation.files import save_text
from tfmood.evaluation.metrics import check_matrices
from tfmood.tags import NUM_TAGS, PREFIX, TAGS, tag_index


def best_f_threshold(labels, scores) -> float:
    """The threshold of the F-maximising point of one tag's precision-recall curve."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    with np.errstate(divide="ignore", invalid="ignore"):
        f_score = np.nan_to_num(2 * precision * recall / (precision + recall))
    # The curve's last point (recall 0) has no threshold; it can only win when every F is 0.
    return thresholds[min(int(np.argmax(f_score)), len(thresholds) - 1)]


def fit_thresholds(groundtruth, predictions) -> np.ndarray:
    """Thresholds [56] (dtype of `predictions`) maximising each tag's F-score on these labels.

    A tag with no positive track gets `+inf` (never predicted) and a warning naming it: MTG's
    recipe would pick the lowest score there, i.e. predict the tag for every track.
    """
    gt = check_matrices(groundtruth, predictions=predictions)
    predictions = np.asarray(predictions)
    thresholds = np.full(NUM_TAGS, np.inf, dtype=np.result_type(predictions.dtype, np.float32))
    missing = []
    for i in range(NUM_TAGS):
        if gt[:, i].any():
            thresholds[i] = best_f_threshold(gt[:, i], predictions[:, i])
        else:
            missing.append(TAGS[i])
    if missing:
        warnings.warn(f"No positive track for {len(missing)} tag(s) ({', '.join(missing)}): their threshold "
                      f"is +inf, so they are never predicted. Fit thresholds on a split containing every tag.",
                      stacklevel=2)
    return thresholds


def decide(predictions, thresholds) -> np.ndarray:
    """Bool decisions `predictions > thresholds` (strict, broadcast over rows)."""
    thresholds = np.asarray(thresholds)
    if thresholds.shape != (NUM_TAGS,):
        raise ValueError(f"thresholds must have shape ({NUM_TAGS},). Received: {thresholds.shape}")
    predictions = np.asarray(predictions)
    if predictions.ndim != 2 or predictions.shape[1] != NUM_TAGS:
        raise ValueError(f"predictions must have shape [n_tracks, {NUM_TAGS}]. Received: {predictions.shape}")
    return predictions > thresholds


def save_thresholds(path: str, thresholds) -> None:
    """Write `mood/theme---<tag>\\t<threshold>` lines in canonical order (MTG's thresholds file format).

    `repr(float(t))` is the shortest text that reads back to the same value, so a float32 threshold
    round-trips exactly (and MTG's file is reproduced byte for byte).
    """
    thresholds = np.asarray(thresholds)
    if thresholds.shape != (NUM_TAGS,):
        raise ValueError(f"thresholds must have shape ({NUM_TAGS},). Received: {thresholds.shape}")
    save_text(path, "".join(f"{PREFIX}{tag}\t{float(t)!r}\n" for tag, t in zip(TAGS, thresholds)))


def load_thresholds(path: str) -> np.ndarray:
    """Read a thresholds TSV (prefixed or bare tag names, any row order) into a float64 array [56]."""
    values = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            try:
                if len(fields) != 2:
                    raise ValueError(f"expected 'tag<TAB>threshold', got {len(fields)} field(s)")
                index = tag_index(fields[0].strip())
                if index in values:
                    raise ValueError(f"tag {TAGS[index]!r} appears twice")
                values[index] = float(fields[1])
            except (ValueError, KeyError) as e:
                raise ValueError(f"{path}:{line_no}: {e.args[0] if e.args else e}") from None
    missing = [TAGS[i] for i in range(NUM_TAGS) if i not in values]
    if missing:
        raise ValueError(f"{path}: no threshold for {len(missing)} tag(s): {', '.join(missing)}.")
    return np.array([values[i] for i in range(NUM_TAGS)], dtype=np.float64)
