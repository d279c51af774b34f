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
