"""The VGG-ish FCN (MTG's baseline): the shared model checks, plus what makes it length-agnostic."""

import keras
import numpy as np
import pytest
from model_harness import run_model_test

from tfmood import models

TINY = dict(channels=(4, 4, 4, 4, 4))


def test_vggish_passes_the_model_harness():
    model = run_model_test("vggish", input_shape=(96, None, 1), frames=(64, 1), **TINY)
    assert [model.get_layer(f"conv_{i}").filters for i in range(1, 6)] == [4] * 5


def test_default_widths_and_names_follow_mtg():
    model = models.build("vggish")
    assert [model.get_layer(f"conv_{i}").filters for i in range(1, 6)] == [64, 128, 128, 128, 64]
    assert model.get_layer("bn_init").epsilon == 1e-5 and model.get_layer("bn_1").momentum == 0.9
    widths = [1, 64, 128, 128, 128, 64]
    convs = sum(9 * i * o + o for i, o in zip(widths, widths[1:]))
    batch_norms = 4 * sum(widths)  # gamma, beta, moving mean/variance; bn_init has the 1 input channel
    assert model.count_params() == convs + batch_norms + 64 * 56 + 56 == 449148  # MTG's state dict size


def test_mtg_training_length_reduces_to_one_position():
    """At 96 x 1366 the last map is 1 x 1, so global pooling is exactly MTG's flatten."""
    model = models.build("vggish", **TINY)
    last = keras.Model(model.input, model.get_layer("mp_5").output)
    assert tuple(last(np.zeros((1, 96, 1366, 1), np.float32)).shape) == (1, 1, 1, 4)


def test_short_inputs_are_repeated_to_the_pooling_length():
    model = models.build("vggish", **TINY)
    short = np.random.default_rng(0).standard_normal((2, 96, 300, 1)).astype(np.float32)
    repeated = np.tile(short, (1, 1, 5, 1))[:, :, :1280]
    np.testing.assert_allclose(np.asarray(model(short, training=False)),
                               np.asarray(model(repeated, training=False)), atol=1e-6)


def test_rejects_too_few_bands_and_bad_widths():
    with pytest.raises(ValueError, match="at least 96 mel bands"):
        models.build("vggish", input_shape=(32, None, 1), **TINY)
    with pytest.raises(ValueError, match="channels"):
        models.build("vggish", channels=(4, 4))
