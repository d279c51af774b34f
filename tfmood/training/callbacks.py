"""Callbacks: whole-track validation with the official metrics, feeding checkpointing and schedules."""

import json
import os

import keras
import numpy as np

from tfmood.data import pipeline
from tfmood.evaluation.metrics import AUC_KEYS, official_metrics, undefined_tags

MONITOR = "val_PR-AUC-macro"


def bce(labels, scores, eps=1e-7):
    p = np.clip(scores, eps, 1 - eps)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


class TrackEvaluation(keras.callbacks.Callback):
    """After each epoch, score every validation track (mean over evenly spaced segments) and add
    `val_loss` and `val_{PR,ROC}-AUC-{macro,micro}` (MTG's metric names) to the epoch logs; keeps the last
    `(labels, scores)` in `.last` for later callbacks.

    It must come *before* the checkpoint, schedule, early-stopping and TensorBoard callbacks: they read
    the same logs dict. Each epoch's figures are also appended to `history_path` (JSON lines), which lets
    a resumed run know the best score so far.
    """

    def __init__(self, records_dir, split="validation", crop_frames=960, segments=16, batch_size=32,
                 history_path=None):
        super().__init__()
        self.args = dict(records_dir=records_dir, split=split, crop_frames=crop_frames, segments=segments,
                         batch_size=batch_size)
        self.history_path = history_path
        self.last = None

    def on_epoch_end(self, epoch, logs=None):
        _, scores, labels = pipeline.predict_tracks(self.model, **self.args)
        if undefined_tags(labels):
            raise ValueError(f"The {self.args['split']} split lacks positives or negatives for some tags: "
                             f"{undefined_tags(labels)}; validation metrics are undefined.")
        self.last = (labels, scores)  # for later callbacks (TensorBoard views) without predicting again
        logs = logs if logs is not None else {}
        logs.update(track_metrics(labels, scores))
        if self.history_path:
            with open(self.history_path, "a") as f:
                f.write(json.dumps({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}) + "\n")


def track_metrics(labels, scores, prefix="val_") -> dict:
    """Epoch-log figures of whole-track scores: `{prefix}loss` and the four AUCs (macro and micro)."""
    metrics = official_metrics(labels, scores)
    return {f"{prefix}loss": bce(labels, scores), **{f"{prefix}{k}": metrics[k] for k in AUC_KEYS}}


def best_so_far(history_path, monitor=MONITOR):
    """Best monitored value recorded by an earlier (interrupted) run, or None."""
    if not history_path or not os.path.exists(history_path):
        return None
    values = []
    with open(history_path) as f:
        for line in f:
            try:
                values.append(json.loads(line)[monitor])
            except (ValueError, KeyError):
                continue  # a line cut by a crash
    return max(values) if values else None


class EpochPrinter(keras.callbacks.Callback):
    """One readable line per epoch, after the validation figures exist (Keras' own logger prints earlier)."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        print(f"epoch {epoch + 1}/{self.epochs}  loss {logs.get('loss', float('nan')):.4f}  "
              f"val_loss {logs.get('val_loss', float('nan')):.4f}  "
              f"val PR-AUC-macro {logs.get(MONITOR, float('nan')):.4f}  "
              f"val ROC-AUC-macro {logs.get('val_ROC-AUC-macro', float('nan')):.4f}  lr {lr:.2e}", flush=True)
