"""Callbacks: whole-track validation with the official metrics, feeding checkpointing and schedules."""

import json
import os

import keras
import numpy as np

from tfmood.data import pipeline
from tfmood.evaluation.metrics import AUC_KEYS, official_metrics, undefined_tags
from tfmood.training.strategy import local_predictor

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
                 history_path=None, branches=False):
        super().__init__()
        self.args = dict(records_dir=records_dir, split=split, crop_frames=crop_frames, segments=segments,
                         batch_size=batch_size)
        self.history_path = history_path
        self.branches = branches  # also log `val_att_...` / `val_clf_...` of a two-branch tagger (AMLAG's selection)
        self.last = None

    def on_epoch_end(self, epoch, logs=None):
        if self.branches:
            return self._with_branches(epoch, logs)
        # local_predictor: under MultiWorkerMirroredStrategy, `predict_on_batch` gathers every worker's rows
        _, scores, labels = pipeline.predict_tracks(local_predictor(self.model), **self.args)
        self._log(epoch, logs, labels, scores, {})

    def _with_branches(self, epoch, logs):
        # One forward pass yields the tagger's scores and each branch's: their columns side by side.
        from tfmood.models.dual_branch import BRANCHES
        _, columns, labels = pipeline.predict_tracks(branch_predictor(self.model), **self.args)
        parts = np.split(columns, 1 + len(BRANCHES), axis=-1)
        extra = {}
        for branch, part in zip(BRANCHES, parts[1:]):
            extra.update(track_metrics(labels, part, prefix=f"val_{branch}_"))
        self._log(epoch, logs, labels, parts[0], extra)

    def _log(self, epoch, logs, labels, scores, extra):
        if undefined_tags(labels):
            raise ValueError(f"The {self.args['split']} split lacks positives or negatives for some tags: "
                             f"{undefined_tags(labels)}; validation metrics are undefined.")
        self.last = (labels, scores)  # for later callbacks (TensorBoard views) without predicting again
        logs = logs if logs is not None else {}
        logs.update(track_metrics(labels, scores))
        logs.update(extra)
        if self.history_path:
            with open(self.history_path, "a") as f:
                f.write(json.dumps({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}) + "\n")


def branch_predictor(model):
    """`x -> [scores | att | clf]` for a `DualBranchTagger` (scores as its own `scores` layer makes them)."""
    import tensorflow as tf
    from tfmood.models.dual_branch import BRANCHES

    if not hasattr(model, "branches"):
        raise ValueError(f"A branch monitor (val_att_..., val_clf_...) needs a two-branch tagger "
                         f"(attention_mobilenetv2, attention_resnet34). Received: {type(model).__name__}.")
    scorer = model.get_layer("scores")

    @tf.function(reduce_retracing=True)
    def forward(x):
        outputs = model.branches(x, training=False)
        return tf.concat([scorer(outputs), *(outputs[b] for b in BRANCHES)], axis=-1)

    return lambda x: forward(tf.convert_to_tensor(x))


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
