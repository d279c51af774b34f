"""SWA: the running mean, exact BN recomputation, snapshots, resumable state, co-teaching pairs."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tiny_model  # noqa: F401  (registers tiny_cnn)
from tfmood import models
from tfmood.training import swa

BANDS, FRAMES = 8, 12


def tiny(**options):
    return models.build("tiny_cnn", input_shape=(BANDS, None, 1), **options)


def batches(count=5, batch=4, seed=0, scale=3.0, shift=2.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((count * batch, BANDS, FRAMES, 1)) * scale + shift).astype("float32")
    y = (rng.random((count * batch, 56)) < 0.2).astype("float32")
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True)


def random_weights(model, rng):
    return [rng.standard_normal(w.shape).astype(w.dtype) * 0.1 for w in model.get_weights()]


@pytest.mark.parametrize("epoch,expected", [(0, False), (1, True), (2, False), (3, True), (5, True), (6, False)])
def test_update_epochs_follow_cpjku(epoch, expected):
    assert swa.is_update_epoch(epoch, start=2, every=2) is expected  # 1-based epochs 2, 4, 6


def test_callback_average_equals_numpy_mean_and_keeps_last_snapshots(tmp_path):
    model = tiny()
    _, _, data = batches()
    callback = swa.SWA(start=2, every=2, train_data=data, run_dir=str(tmp_path), keep=2)
    callback.set_model(model)
    rng = np.random.default_rng(1)
    collected = []
    for epoch in range(7):  # collects after 1-based epochs 2, 4, 6
        callback.on_epoch_begin(epoch)
        weights = random_weights(model, rng)
        model.set_weights(weights)
        callback.on_epoch_end(epoch, {})
        if swa.is_update_epoch(epoch, 2, 2):
            collected.append(weights)
        np.testing.assert_array_equal(model.get_weights()[0], weights[0])  # training weights restored
    assert callback.average.n == 3
    averaged = keras.models.load_model(tmp_path / swa.MODEL_FILE)
    bn_stats = {id(v) for layer in swa.batch_norm_layers(model) for v in (layer.moving_mean, layer.moving_variance)}
    for i, (v, got) in enumerate(zip(model.weights, averaged.get_weights())):
        if id(v) not in bn_stats:  # BN statistics are recomputed, everything else is the plain mean
            np.testing.assert_allclose(got, np.mean([c[i] for c in collected], axis=0), rtol=1e-6, atol=1e-7)
    assert [os.path.basename(p) for p in swa.snapshots(str(tmp_path))] == ["swa-2.keras", "swa-3.keras"]
    snapshot = keras.models.load_model(tmp_path / "swa-3.keras")  # the collected model itself
    np.testing.assert_array_equal(snapshot.get_weights()[1], collected[2][1])


def test_bn_update_gives_exact_mean_and_variance_of_the_pass():
    model = tiny()
    x, _, data = batches(count=5, batch=4)
    swa.BatchNormUpdate(model)(data)
    bn_in, bn_conv = model.get_layer("bn_in"), model.get_layer("bn_conv")
    np.testing.assert_allclose(bn_in.moving_mean.numpy(), [x.mean()], rtol=1e-5)
    np.testing.assert_allclose(bn_in.moving_variance.numpy(), [x.var()], rtol=1e-5)
    # bn_conv sees the conv of batch-normalised inputs (training mode: each batch with its own statistics)
    probe = keras.Model(model.inputs, model.get_layer("conv").output)
    acts = np.concatenate([probe(xb, training=True).numpy() for xb, _ in data])
    np.testing.assert_allclose(bn_conv.moving_mean.numpy(), acts.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn_conv.moving_variance.numpy(), acts.var(axis=(0, 1, 2)), rtol=1e-4)
    assert "call" not in bn_in.__dict__  # the recording wrapper is gone


def test_bn_update_caps_batches_and_skips_models_without_bn():
    x, _, data = batches(count=5, batch=4)
    model = tiny()
    assert swa.BatchNormUpdate(model, max_batches=2)(data) == 2
    np.testing.assert_allclose(model.get_layer("bn_in").moving_mean.numpy(), [x[:8].mean()], rtol=1e-5)
    assert swa.BatchNormUpdate(tiny(batch_norm=False))(data) == 0


def test_state_resumes_with_the_version_matching_the_backup(tmp_path):
    path = str(tmp_path / swa.STATE_FILE)
    average = swa.RunningAverage()
    average.add([np.ones(3)])
    average.save(path, epoch=2)
    average.add([np.zeros(3)])
    average.save(path, epoch=4)  # then a kill before the epoch-4 backup: the backup says 3 epochs
    earlier = swa.RunningAverage.load(path, max_epoch=3)
    assert earlier.n == 1 and np.allclose(earlier.average[0], 1.0)
    latest = swa.RunningAverage.load(path, max_epoch=4)
    assert latest.n == 2 and np.allclose(latest.average[0], 0.5)
    assert swa.RunningAverage.load(path, max_epoch=1).n == 0  # fresh start


def test_snapshot_paths_list_best_then_last_snapshots(tmp_path):
    with pytest.raises(FileNotFoundError, match="best.keras"):
        swa.snapshot_paths(str(tmp_path))
    for name in ("best.keras", "swa-2.keras", "swa-10.keras", "swa-3.keras", "swa-1.keras", "swa.keras"):
        (tmp_path / name).write_text("")
    names = [os.path.basename(p) for p in swa.snapshot_paths(str(tmp_path), keep=3)]
    assert names == ["best.keras", "swa-2.keras", "swa-3.keras", "swa-10.keras"]


def test_swa_averages_a_coteaching_pair(tmp_path):
    from tfmood.training.coteaching import CoTeaching

    pair = CoTeaching(tiny(), tiny(), name="pair")
    pair.compile(optimizer=keras.optimizers.Adam(1e-2), loss="bce")
    _, _, data = batches(count=3, batch=4)
    collected = []

    class Grab(keras.callbacks.Callback):  # runs before SWA: sees the weights SWA collects
        def on_epoch_end(self, epoch, logs=None):
            collected.append(self.model.get_weights())

    callback = swa.SWA(start=1, every=1, train_data=data, run_dir=str(tmp_path))
    pair.fit(data, epochs=2, verbose=0, callbacks=[Grab(), callback])
    assert callback.average.n == 2
    averaged = keras.models.load_model(tmp_path / swa.MODEL_FILE)
    assert isinstance(averaged, CoTeaching)
    kernel = [i for i, v in enumerate(pair.weights) if v.path.endswith("conv/kernel")]
    assert len(kernel) == 2  # one per network
    for i in kernel:
        np.testing.assert_allclose(averaged.get_weights()[i], (collected[0][i] + collected[1][i]) / 2, atol=1e-6)


def test_options_are_validated():
    from tfmood.training.config import TrainConfig

    with pytest.raises(ValueError, match="after the last epoch"):
        TrainConfig(epochs=5, swa_start=6).validate()
    with pytest.raises(ValueError, match="swa_every"):
        TrainConfig(epochs=5, swa_start=2, swa_every=0).validate()


def test_evaluate_averages_best_and_swa_snapshots(tiny_records, tmp_path):
    import json

    from tfmood import evaluate
    from tfmood.data import pipeline
    from tfmood.data.convert import read_manifest
    from tfmood.evaluation.metrics import official_metrics

    bands = read_manifest(tiny_records)["bands"]
    scores = []
    for i, name in enumerate(("best.keras", "swa-1.keras", "swa-2.keras")):
        keras.utils.set_random_seed(i)
        model = models.build("tiny_cnn", input_shape=(bands, None, 1))
        model.save(tmp_path / name)
        scores.append(pipeline.predict_tracks(model, tiny_records, "test", crop_frames=16, segments=2)[1:])
    paths = swa.snapshot_paths(str(tmp_path))
    evaluate.main(["--model", paths[0], "--snapshots", *paths[1:], "--data", tiny_records, "--out",
                   str(tmp_path / "eval"), "--crop-frames", "16", "--segments", "2", "--no-figure"])
    mean = np.mean([s for s, _ in scores], axis=0)
    expected = official_metrics(scores[0][1], mean)["PR-AUC-macro"]
    got = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert got["source"]["snapshots"] == paths[1:]
    assert got["metrics"]["PR-AUC-macro"] == pytest.approx(expected, abs=1e-6)


def run_callback(run_dir, weights_seq, data, epochs, every_update, first_epoch=0):
    """Drive an SWA callback (start 2, every 2) as `fit(epochs=epochs)` would, with the weights
    `weights_seq[epoch]` at each epoch's end; a shorter `weights_seq` is a run killed after that many."""
    os.makedirs(run_dir, exist_ok=True)
    model = tiny()
    callback = swa.SWA(start=2, every=2, train_data=data, run_dir=str(run_dir), every_update=every_update)
    callback.set_model(model)
    callback.set_params({"epochs": epochs})
    passes = []
    for epoch in range(first_epoch, len(weights_seq)):
        callback.on_epoch_begin(epoch)  # the first call loads the state and builds `bn_update`
        if epoch == first_epoch:
            callback.bn_update = _Counting(callback.bn_update, passes)
        model.set_weights(weights_seq[epoch])
        callback.on_epoch_end(epoch, {})
    return model, callback, passes


class _Counting:
    """A BatchNormUpdate that records at which calls a pass ran."""

    def __init__(self, inner, passes):
        self.inner, self.passes = inner, passes

    def __call__(self, dataset):
        self.passes.append("pass")
        return self.inner(dataset)

    def skip(self, dataset):
        self.passes.append("skip")
        return self.inner.skip(dataset)


def test_light_updates_give_the_swa_model_of_a_pass_at_every_update(tmp_path):
    x, _, data = batches()
    rng = np.random.default_rng(3)
    model = tiny()
    weights_seq = [random_weights(model, rng) for _ in range(7)]  # updates after 1-based epochs 2, 4, 6
    _, _, passes = run_callback(tmp_path / "light", weights_seq, data, 7, every_update=False)
    _, _, eager_passes = run_callback(tmp_path / "every", weights_seq, data, 7, every_update=True)
    assert passes == ["skip", "skip", "pass"] and eager_passes == ["pass"] * 3
    light = keras.models.load_model(tmp_path / "light" / swa.MODEL_FILE).get_weights()
    every = keras.models.load_model(tmp_path / "every" / swa.MODEL_FILE).get_weights()
    for a, b in zip(light, every):
        np.testing.assert_array_equal(a, b)
    # the straightforward computation: numpy mean of the collected weights, then a fresh BN pass by hand
    mean = [np.mean([weights_seq[e][i] for e in (1, 3, 5)], axis=0) for i in range(len(light))]
    reference = tiny()
    reference.set_weights([m.astype(w.dtype) for m, w in zip(mean, reference.get_weights())])
    bn_stats = {id(v) for layer in swa.batch_norm_layers(reference) for v in (layer.moving_mean, layer.moving_variance)}
    for v, got, want in zip(reference.weights, light, mean):
        if id(v) not in bn_stats:
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    probe = keras.Model(reference.inputs, reference.get_layer("conv").output)
    acts = np.concatenate([probe(xb, training=True).numpy() for xb, _ in data])
    names = [v.path for v in reference.weights]
    got = dict(zip(names, light))
    np.testing.assert_allclose(got["bn_in/moving_mean"], [x.mean()], rtol=1e-5)
    np.testing.assert_allclose(got["bn_in/moving_variance"], [x.var()], rtol=1e-5)
    np.testing.assert_allclose(got["bn_conv/moving_mean"], acts.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got["bn_conv/moving_variance"], acts.var(axis=(0, 1, 2)), rtol=1e-4)
    snapshot = keras.models.load_model(tmp_path / "light" / "swa-3.keras").get_weights()
    for a, b in zip(snapshot, weights_seq[5]):
        np.testing.assert_array_equal(a, b)


def test_light_updates_resume_from_the_saved_state(tmp_path):
    _, _, data = batches()
    rng = np.random.default_rng(4)
    weights_seq = [random_weights(tiny(), rng) for _ in range(7)]
    run_callback(tmp_path / "straight", weights_seq, data, 7, every_update=False)
    run_callback(tmp_path / "killed", weights_seq[:4], data, 7, every_update=False)  # ... killed after epoch 4
    assert not (tmp_path / "killed" / swa.MODEL_FILE).exists()  # the light updates wrote no swa.keras
    _, resumed, passes = run_callback(tmp_path / "killed", weights_seq, data, 7, every_update=False, first_epoch=4)
    assert resumed.average.n == 3 and passes == ["pass"]
    straight = keras.models.load_model(tmp_path / "straight" / swa.MODEL_FILE).get_weights()
    for a, b in zip(keras.models.load_model(tmp_path / "killed" / swa.MODEL_FILE).get_weights(), straight):
        np.testing.assert_array_equal(a, b)


def test_a_skipped_bn_pass_leaves_the_training_stream_as_a_pass_would(tiny_records):
    from tfmood.data import pipeline

    def epochs_after(advance):
        ds = pipeline.train_dataset(tiny_records, "train", batch_size=2, crop_frames=16, seed=0,
                                    deterministic=True)  # the default parallel map may reorder batches
        first = [b[0].numpy() for b in ds]
        advance(ds)
        return first, [b[0].numpy() for b in ds]

    bn = swa.BatchNormUpdate(models.build("tiny_cnn", input_shape=(read_bands(tiny_records), None, 1)))
    first, after_pass = epochs_after(bn)
    _, after_skip = epochs_after(bn.skip)
    _, after_nothing = epochs_after(lambda ds: None)
    assert len(after_pass) == len(after_skip) > 0
    for a, b in zip(after_pass, after_skip):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(after_pass, after_nothing))  # the pass did move it
    assert not all(np.array_equal(a, b) for a, b in zip(first, after_pass))


def read_bands(records):
    from tfmood.data.convert import read_manifest

    return read_manifest(records)["bands"]
