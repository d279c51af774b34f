"""Segment CNN + self-attention taggers (AMLAG 2019, UAI-CNRL 2020) and their two-branch loss."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import keras
import pytest

from model_harness import run_model_test
from tfmood import models
from tfmood.models.segments import SplitSegments
from tfmood.models.transformer import sinusoidal_table

TINY = dict(alpha=0.35, segment_frames=32, hidden=16, conv_width=16, ffn=32, head_padding="same")


def _tiny_model(**overrides):
    keras.utils.set_random_seed(0)
    return models.build("attention_mobilenetv2", input_shape=(32, None, 1), **{**TINY, **overrides})


def _data(frames=64, batch=4):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 32, frames, 1)).astype("float32")
    y = (rng.random((batch, 56)) < 0.2).astype("float32")
    return x, y


def test_attention_mobilenetv2_passes_harness():
    run_model_test("attention_mobilenetv2", **TINY)


def test_attention_resnet34_passes_harness():
    tiny = {k: v for k, v in TINY.items() if k != "alpha"}
    model = run_model_test("attention_resnet34", width=4, **tiny)
    assert model.branches.get_layer("segment_resnet34_stage4_block3_add").output.shape[-1] == 32  # 8 x width


@pytest.fixture(scope="module")
def tiny():
    """No dropout: the training-mode forward pass is then deterministic, so branch losses can be recomputed."""
    return _tiny_model(dropout=0.0, attention_dropout=0.0)


def test_scores_are_the_mean_of_both_branches(tiny):
    model = tiny
    x, _ = _data(frames=50)
    branches = model.branches(x, training=False)
    np.testing.assert_allclose(model(x, training=False), (branches["att"] + branches["clf"]) / 2, atol=1e-7)
    assert not np.allclose(branches["att"], branches["clf"], atol=1e-3)  # otherwise the mean proves nothing


@pytest.mark.parametrize("loss, run_eagerly", [
    (keras.losses.BinaryCrossentropy(), True),
    (keras.losses.BinaryFocalCrossentropy(gamma=2), True),
    pytest.param(keras.losses.BinaryCrossentropy(), False, marks=pytest.mark.slow),  # traced train_step
])
def test_training_loss_is_the_mean_of_branch_losses(tiny, loss, run_eagerly):
    model = tiny
    x, y = _data()
    branches = model.branches(x, training=True)
    expected = (float(loss(y, branches["att"])) + float(loss(y, branches["clf"]))) / 2
    of_mean = float(loss(y, (branches["att"] + branches["clf"]) / 2))
    assert abs(expected - of_mean) > 1e-4  # the test could not tell the two losses apart otherwise
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss, run_eagerly=run_eagerly)
    reported = model.train_on_batch(x, y)
    np.testing.assert_allclose(float(np.ravel(reported)[0]), expected, rtol=1e-5)


def test_compute_loss_reuses_the_forward_pass_behind_y_pred(tiny, monkeypatch):
    model = tiny
    model.compile(loss="binary_crossentropy")
    x, y = _data()
    y_pred = model(x, training=False)
    calls = []
    monkeypatch.setattr(model.branches, "call", lambda *a, **k: calls.append(1))  # a second pass would hit this
    loss = model.compute_loss(x, y, y_pred, training=False)
    assert not calls and np.isfinite(float(loss))


def test_any_crop_length_uses_ceil_frames_over_segment_segments():
    x = np.arange(2 * 3 * 5).reshape(2, 3, 5, 1).astype("float32")  # 5 frames, segments of 2 -> 3 (tiled)
    out = np.asarray(SplitSegments(2)(x))
    assert out.shape == (6, 3, 2, 1)
    np.testing.assert_array_equal(out[2, :, :, 0], x[0, :, [4, 0], 0].T)  # last segment wraps to the start
    np.testing.assert_array_equal(out[3, :, :, 0], x[1, :, 0:2, 0])       # the second track starts at row 3


def test_positions_follow_amlag_table():
    table = sinusoidal_table(16, 256)
    np.testing.assert_array_equal(table[0], 0.0)
    np.testing.assert_allclose(table[3, 4], np.sin(3 / 10000 ** (4 / 256)), rtol=1e-6)
    np.testing.assert_allclose(table[3, 5], np.cos(3 / 10000 ** (4 / 256)), rtol=1e-6)


def test_too_many_segments_names_the_fix():
    model = _tiny_model(max_segments=2)
    x, _ = _data(frames=3 * 32)
    with pytest.raises(Exception, match="max_segments"):
        model(x, training=False)


def test_valid_out_conv_on_too_small_maps_says_what_to_change():
    with pytest.raises(ValueError, match="head_padding='same'"):
        _tiny_model(head_padding="valid")


RESNET_TINY = dict(width=4, segment_frames=32, hidden=16, conv_width=16, ffn=32, head_padding="same", dropout=0.0,
                   attention_dropout=0.0)


@pytest.fixture(scope="module")
def uai():
    keras.utils.set_random_seed(0)
    return models.build("attention_resnet34", input_shape=(32, None, 1), **RESNET_TINY)


def test_attention_resnet34_stems_each_segment_to_3_channels_by_two_convolutions(uai):
    """UAI-CNRL (seeds/003 §4.2): two convolutions to 3 channels before ResNet34."""
    stem = uai.branches.get_layer("segment_stem_conv2")
    assert stem.output.shape[-1] == 3 and uai.branches.get_layer("segment_stem_conv1").output.shape[-1] == 10
    assert uai.branches.get_layer("segment_resnet34_stem_conv").kernel.shape[2] == 3
    plain = models.build("attention_resnet34", input_shape=(32, None, 1), stem=None, **RESNET_TINY)
    assert plain.branches.get_layer("segment_resnet34_stem_conv").kernel.shape[2] == 1


def test_attention_resnet34_predicts_from_the_attention_branch_and_trains_both(uai):
    """UAI-CNRL: scores = att; the loss is still (L(att) + L(clf)) / 2."""
    x, y = _data(frames=64)
    branches = uai.branches(x, training=False)
    assert not np.allclose(branches["att"], branches["clf"], atol=1e-3)
    np.testing.assert_allclose(uai(x, training=False), branches["att"], atol=1e-7)
    loss = keras.losses.BinaryCrossentropy()
    training = uai.branches(x, training=True)  # what train_on_batch sees (batch statistics; no dropout here)
    expected = (float(loss(y, training["att"])) + float(loss(y, training["clf"]))) / 2
    assert abs(expected - float(loss(y, training["att"]))) > 1e-4  # a loss on `att` alone would be caught
    uai.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss, run_eagerly=True)
    np.testing.assert_allclose(float(np.ravel(uai.train_on_batch(x, y))[0]), expected, rtol=1e-5)


def test_prediction_choice_survives_saving(uai, tmp_path):
    path = str(tmp_path / "uai.keras")
    uai.save(path)
    loaded = keras.models.load_model(path)
    x, _ = _data(frames=64)
    np.testing.assert_allclose(loaded(x, training=False), uai(x, training=False), atol=1e-6)
    assert loaded.prediction == "att"
    with pytest.raises(ValueError, match="prediction"):
        models.build("attention_mobilenetv2", input_shape=(32, None, 1), prediction="both", **TINY)
