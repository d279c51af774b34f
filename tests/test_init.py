import keras
import numpy as np

from tfmood.training.init import set_prior_bias, tag_heads


def test_prior_bias_sets_every_sigmoid_tag_head():
    x = keras.Input((4,))
    a = keras.layers.Dense(56, activation="sigmoid")(x)
    b = keras.layers.Dense(56, activation="sigmoid")(keras.layers.Dense(8)(x))
    other = keras.layers.Dense(56)(x)  # not a sigmoid head: untouched
    model = keras.Model(x, [a, b, other])
    counts = np.arange(56) * 10
    assert set_prior_bias(model, counts, 1000) == 2 == len(tag_heads(model, 56))
    scores = model(np.zeros((1, 4), np.float32))
    for s in scores[:2]:
        np.testing.assert_allclose(np.asarray(s)[0], (counts + 0.5) / 1001, rtol=1e-4)
    np.testing.assert_array_equal(np.asarray(scores[2]), 0.0)
