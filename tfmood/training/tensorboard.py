"""TensorBoard views beyond `keras.callbacks.TensorBoard`'s scalars.

    tensorboard --logdir runs/<name>/logs

`keras.callbacks.TensorBoard` already writes, per epoch, every number in the epoch logs: `train/` losses,
PR/ROC-AUC macro and micro, learning rate, co-teaching's `kept_fraction`/`agreement`/`forget_rate`, and in
`validation/` the whole-track figures of `TrackEvaluation` and SWA (`epoch_swa_PR-AUC-macro`, ...). This
module's `TrainingViews` adds, from the validation scores `TrackEvaluation` already computed:

- `train/throughput/samples_per_second` (training steps only, validation excluded);
- `validation/pr_auc/<tag>`: each tag's PR-AUC (average precision);
- `validation/pr/<tag>`: PR curves (pr_curves plugin), every `curves_every` epochs;
- `validation/example`: a validation spectrogram with its true and top predicted tags, every `image_every` epochs.

Summaries written inside a `train_step` need an explicit step (`step=self.optimizer.iterations`) and
their own writer: the callback's default step is baked into the traced function (see
/work/shared/reference/serving.md, section 4).
"""

import io
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfmood.evaluation.metrics import average_precision_per_tag
from tfmood.tags import TAGS


class TrainingViews(keras.callbacks.Callback):
    """Writes the extra views to `log_dir/{train,validation}`. Place it after `TrackEvaluation`.

    `evaluation`: the run's `TrackEvaluation` (its `.last` holds `(labels, scores)` of the epoch; its
    `.args` name the records to take the example spectrogram from). `batch_size`: the global batch.
    """

    def __init__(self, log_dir: str, evaluation, batch_size: int, curves_every: int = 1, image_every: int = 1,
                 num_thresholds: int = 201):
        super().__init__()
        self.log_dir, self.evaluation, self.batch_size = log_dir, evaluation, batch_size
        self.curves_every, self.image_every, self.num_thresholds = curves_every, image_every, num_thresholds
        self.writers, self.example = None, None

    def on_train_begin(self, logs=None):
        self.writers = {run: tf.summary.create_file_writer(os.path.join(self.log_dir, run))
                        for run in ("train", "validation")}
        self.example = first_track(**self.evaluation.args) if self.evaluation else None

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.steps, self.finished = time.perf_counter(), 0, None

    def on_train_batch_end(self, batch, logs=None):
        self.steps, self.finished = batch + 1, time.perf_counter()  # batch jumps with steps_per_execution

    def on_epoch_end(self, epoch, logs=None):
        step = epoch  # the x axis of Keras' epoch_* scalars (0-based epochs)
        if self.finished:
            with self.writers["train"].as_default(step=step):
                tf.summary.scalar("throughput/samples_per_second",
                                  self.steps * self.batch_size / max(self.finished - self.started, 1e-9))
        if self.evaluation is None or self.evaluation.last is None:
            return
        labels, scores = self.evaluation.last
        with self.writers["validation"].as_default(step=step):
            for tag, ap in zip(TAGS, average_precision_per_tag(labels, scores)):
                tf.summary.scalar(f"pr_auc/{tag}", ap)
            if epoch % self.curves_every == 0:
                self.write_pr_curves(labels, scores, step)
            if self.example is not None and epoch % self.image_every == 0:
                tf.summary.image("example", example_image(*self.example, scores[0]))
        for writer in self.writers.values():
            writer.flush()

    def write_pr_curves(self, labels, scores, step):
        from tensorboard.plugins.pr_curve import summary as pr_summary

        for i, tag in enumerate(TAGS):
            pb = pr_summary.pb(f"pr/{tag}", labels[:, i], scores[:, i], num_thresholds=self.num_thresholds)
            tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=step)

    def on_train_end(self, logs=None):
        for writer in (self.writers or {}).values():
            writer.close()


def first_track(records_dir, split="validation", crop_frames=960, segments=16, batch_size=None):
    """(track_id, spectrogram [bands, crop_frames], labels [56] bool) of the split's first track,
    which is row 0 of `pipeline.predict_tracks`' scores."""
    from tfmood.data import pipeline

    track = next(iter(pipeline.eval_dataset(records_dir, split, crop_frames, 1)))
    return int(track["track_id"]), track["segments"].numpy()[0, :, :, 0], track["labels"].numpy() > 0.5


def example_image(track_id, spectrogram, labels, scores, top=5) -> tf.Tensor:
    """A `[1, h, w, 4]` uint8 PNG render: the spectrogram, its true tags and the top predicted ones."""
    import matplotlib
    matplotlib.use("Agg")  # no display on training machines
    from matplotlib import pyplot as plt

    true = ", ".join(t for t, on in zip(TAGS, labels) if on) or "(none)"
    best = np.argsort(-scores)[:top]
    predicted = ", ".join(f"{TAGS[i]} {scores[i]:.2f}" for i in best)
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=80)
    ax.imshow(spectrogram, origin="lower", aspect="auto", cmap="magma")
    ax.set(title=f"track {track_id}\ntrue: {true}\npredicted: {predicted}", xlabel="frame", ylabel="mel band")
    ax.title.set_fontsize(8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return tf.image.decode_png(buffer.getvalue(), channels=4)[None]


def attach(callbacks: list, cfg, log_dir: str) -> list:
    """`callbacks` with `TrainingViews` inserted after `keras.callbacks.TensorBoard` (or at the end)."""
    from tfmood.training.callbacks import TrackEvaluation

    evaluation = next((c for c in callbacks if isinstance(c, TrackEvaluation)), None)
    at = next((i + 1 for i, c in enumerate(callbacks) if isinstance(c, keras.callbacks.TensorBoard)),
              len(callbacks))
    return callbacks[:at] + [TrainingViews(log_dir, evaluation, cfg.batch_size)] + callbacks[at:]
