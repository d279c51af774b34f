"""TensorBoard views: every promised tag is in the event files (read back with EventAccumulator)."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tiny_model  # noqa: F401  (registers tiny_cnn)
from tfmood.tags import TAGS
from tfmood.training import tensorboard


def event_tags(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0}).Reload()
    return acc, set(acc.Tags()["tensors"])


@pytest.fixture(scope="module")
def coteaching_swa_run(tiny_records, tmp_path_factory):
    from tfmood.training.config import TrainConfig
    from tfmood.training.trainer import train

    out = tmp_path_factory.mktemp("tb")
    cfg = TrainConfig(model="tiny_cnn", peer="tiny_cnn", forget_rate=0.2, forget_epochs=1, data=tiny_records,
                      epochs=2, batch_size=8, crop_frames=32, eval_segments=2, out=str(out), name="tb",
                      export=False, swa_start=2, swa_every=1, verbose=0)
    train(cfg)
    return Path(out) / "tb" / "logs"


def test_train_views(coteaching_swa_run):
    _, tags = event_tags(coteaching_swa_run / "train")
    expected = {"epoch_loss", "epoch_PR-AUC-macro", "epoch_ROC-AUC-macro", "epoch_PR-AUC-micro",
                "epoch_ROC-AUC-micro", "epoch_learning_rate", "throughput/samples_per_second",
                "epoch_kept_fraction", "epoch_agreement", "epoch_forget_rate"}  # co-teaching's own figures
    assert expected <= tags, expected - tags


def test_validation_views(coteaching_swa_run):
    acc, tags = event_tags(coteaching_swa_run / "validation")
    expected = {"epoch_loss", "epoch_PR-AUC-macro", "epoch_ROC-AUC-macro", "epoch_PR-AUC-micro",
                "epoch_ROC-AUC-micro", "epoch_swa_PR-AUC-macro", "epoch_swa_ROC-AUC-micro", "example",
                *(f"pr_auc/{t}" for t in TAGS), *(f"pr/{t}/pr_curves" for t in TAGS)}
    assert expected <= tags, expected - tags
    curve = tf.make_ndarray(acc.Tensors(f"pr/{TAGS[0]}/pr_curves")[-1].tensor_proto)
    assert curve.shape == (6, 201)  # TP, FP, TN, FN, precision, recall at 201 thresholds
    assert [e.step for e in acc.Tensors("pr_auc/happy")] == [0, 1]  # 0-based epochs, as Keras writes them
    assert [e.step for e in acc.Tensors("epoch_swa_PR-AUC-macro")] == [1]  # only when SWA changed (epoch 2)


def test_example_image_is_an_rgba_png_batch():
    rng = np.random.default_rng(0)
    labels = np.zeros(len(TAGS), bool)
    labels[[1, 5]] = True
    image = tensorboard.example_image(7, rng.standard_normal((16, 40)), labels, rng.random(len(TAGS)))
    assert image.shape[0] == 1 and image.shape[-1] == 4 and image.dtype == tf.uint8
    assert image.shape[1] > 100 and image.shape[2] > 300
