"""The MediaEval submission files: `predictions.npy` (float64 scores) and `decisions.npy` (bool).

Rows are the test tracks in the order of the split's test TSV, columns the 56 canonical tags.
"""

import os

import numpy as np

from tfmood.evaluation.files import save_npy
from tfmood.tags import NUM_TAGS

PREDICTIONS_FILE = "predictions.npy"
DECISIONS_FILE = "decisions.npy"


def write_submission(out_dir: str, predictions, decisions) -> dict:
    """Write both files atomically into `out_dir`; return their paths."""
    predictions, decisions = np.asarray(predictions), np.asarray(decisions)
    for name, value in (("predictions", predictions), ("decisions", decisions)):
        if value.ndim != 2 or value.shape[1] != NUM_TAGS or value.shape[0] == 0:
            raise ValueError(f"{name} must have shape [n_tracks, {NUM_TAGS}]. Received: {value.shape}")
    if predictions.shape != decisions.shape:
        raise ValueError(f"decisions shape {decisions.shape} doesn't match predictions {predictions.shape}.")
    if decisions.dtype != bool and not np.isin(decisions, (0, 1)).all():
        raise ValueError(f"decisions must be bool or 0/1. Received dtype {decisions.dtype} with other values.")
    if not np.isfinite(predictions).all():
        raise ValueError(f"predictions hold {np.count_nonzero(~np.isfinite(predictions))} NaN/inf values.")
    paths = {"predictions": os.path.join(out_dir, PREDICTIONS_FILE),
             "decisions": os.path.join(out_dir, DECISIONS_FILE)}
    save_npy(paths["predictions"], predictions.astype(np.float64))
    save_npy(paths["decisions"], decisions.astype(bool))
    return paths
