"""One harness every registered model must pass: shapes, config round trip, `.keras` round trip, a training step.

    from model_harness import run_model_test   # pytest puts tests/ on sys.path (no __init__.py there)
    run_model_test("cp_resnet", input_shape=(32, None, 1), frames=(64, 37), base_channels=8, depth=8)

Everything goes through `tfmood.models.build`, so a model passes only if the registry entry works as users call it.
Keep the options tiny (narrow widths, few blocks): each call should take a few seconds on an idle 2-core CPU
(deep fixed-depth Keras applications such as EfficientNet-B0 take longer).
"""

import copy
import tempfile

import numpy as np
import keras

from tfmood import models
from tfmood.tags import NUM_TAGS


def _batch(input_shape, frames, batch, seed):
    bands, _, channels = input_shape
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, bands, frames, channels)).astype("float32")


def check_output_shapes(model, input_shape, frames, num_tags=NUM_TAGS, batch=2):
    """Scores are `[batch, num_tags]` in [0, 1] for every time length (the time axis is free)."""
    for i, length in enumerate(frames):
        scores = np.asarray(model(_batch(input_shape, length, batch, i), training=False))
        assert scores.shape == (batch, num_tags), f"{length} frames gave shape {scores.shape}"
        assert np.all(np.isfinite(scores)), f"non-finite scores at {length} frames"
        assert scores.min() >= 0.0 and scores.max() <= 1.0, f"scores outside [0, 1] at {length} frames"


def check_config_round_trip(model):
    """`from_config(get_config())` rebuilds the same graph: custom layers must be registered + serializable.

    Structural (same layers, weight shapes and re-serialised config); `check_save_load` compares the outputs
    of a model deserialised the same way, so running the rebuilt copy again would only cost time.
    """
    config = model.get_config()
    rebuilt = model.__class__.from_config(copy.deepcopy(config))  # from_config consumes its argument
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in model.weights], "rebuilt weights differ"
    assert rebuilt.get_config() == config, "config changes when rebuilt: a layer does not serialise an argument"


def check_save_load(model, x, tmp_dir):
    """A `.keras` file reloads to a model giving identical scores (at a length it was never built for)."""
    path = f"{tmp_dir}/{model.name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)),
                               atol=1e-6, err_msg="reloaded .keras model computes something else")


def check_training_step(model, input_shape, frames, num_tags=NUM_TAGS, batch=4, run_eagerly=True):
    """One Adam step on random multi-hot labels gives a finite loss and changes the trainable weights.

    Eager by default: tracing a graph train step costs ~15 s per model on the shared 2-core CPU and tests
    nothing model-specific; `tools/bench_models.py` and the training tests run the compiled path.
    """
    x = _batch(input_shape, frames, batch, seed=7)
    y = (np.random.default_rng(8).random((batch, num_tags)) < 0.1).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", run_eagerly=run_eagerly)
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(x, y)
    loss = float(loss[0] if isinstance(loss, (list, tuple)) else loss)
    assert np.isfinite(loss), f"training loss is {loss}"
    changed = sum(not np.array_equal(b, np.array(w)) for b, w in zip(before, model.trainable_weights))
    assert changed > 0, "a training step changed no trainable weight"


def run_model_test(name, input_shape=(32, None, 1), frames=(64, 37), tmp_dir=None, run_eagerly=True, **options):
    """Run every check on `models.build(name, input_shape, **options)`; returns the built model."""
    keras.utils.set_random_seed(0)
    model = models.build(name, input_shape=input_shape, num_tags=NUM_TAGS, **options)
    check_output_shapes(model, input_shape, frames)
    x = _batch(input_shape, frames[-1], 2, seed=3)
    check_config_round_trip(model)
    with tempfile.TemporaryDirectory() as scratch:
        check_save_load(model, x, tmp_dir or scratch)
    check_training_step(model, input_shape, frames[0], run_eagerly=run_eagerly)
    return model
