"""Losses (BCE, focal, SELAB's weighted focal, CP-JKU's mixed losses), LR schedules and optimizers by name."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmood import train as train_cli
from tfmood.models.dual_branch import DualBranchTagger
from tfmood.training import losses, optimizers, schedules
from tfmood.training.config import TrainConfig

RNG = np.random.default_rng(0)
Y = (RNG.random((6, 5)) < 0.3).astype("float32")
P = RNG.uniform(0.05, 0.95, (6, 5)).astype("float32")


def np_bce(y, p):
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def np_weighted_focal(y, p):
    bce = np_bce(y, p)
    a = np.where(y > 0, 0.75, 0.25)
    return (a * (1 - np.exp(-bce)) ** 2 * bce).mean(axis=-1)


def test_registry_names_and_unknown_loss():
    assert losses.LOSSES.names() == ["bce", "focal", "weighted_focal"]
    with pytest.raises(LookupError, match="Known loss functions: bce, focal, weighted_focal"):
        losses.get("hinge")


def test_per_sample_is_the_mean_over_tags():
    for name in losses.LOSSES.names():
        loss = losses.get(name)
        values = losses.per_sample(loss)(Y, P).numpy()
        assert values.shape == (6,)
        np.testing.assert_allclose(values.mean(), float(loss(Y, P)), rtol=1e-5)
    np.testing.assert_allclose(losses.per_sample(losses.get("bce"))(Y, P), np_bce(Y, P).mean(-1), rtol=1e-5)


def test_weighted_focal_matches_selab_formula_with_soft_labels():
    soft = Y * 0.6  # mixup's soft labels count as positives: weight .75
    np.testing.assert_allclose(losses.get("weighted_focal", reduction=None)(soft, P), np_weighted_focal(soft, P),
                               rtol=1e-5)
    focal = losses.get("focal")
    assert isinstance(focal, keras.losses.BinaryFocalCrossentropy) and focal.gamma == 2.0


def test_mixup_mixed_losses_batch():
    x = tf.constant(RNG.normal(size=(6, 4, 3, 1)), tf.float32)
    y = np.eye(6, dtype="float32")  # distinct rows: each partner can be recovered from its labels
    mx, packed = losses.mixup_mixed_losses(x, tf.constant(y), alpha=0.3, seed=1)
    y_a, y_b, lam = (t.numpy() for t in losses.unpack(packed))
    assert packed.shape == (6, 13) and np.all(lam >= 0.5) and np.all(lam <= 1)
    np.testing.assert_array_equal(y_a, y)
    perm = y_b.argmax(axis=1)
    expected = lam[:, None, None, None] * x.numpy() + (1 - lam[:, None, None, None]) * x.numpy()[perm]
    np.testing.assert_allclose(mx.numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        losses.mixup_mixed_losses(x, y, alpha=0)


@pytest.mark.parametrize("name", ["bce", "weighted_focal"])
def test_mixed_loss_equals_hand_formula(name):
    perm = np.array([3, 0, 5, 1, 2, 4])
    lam = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "float32")
    packed = losses.pack(tf.constant(Y), tf.constant(Y[perm]), tf.constant(lam))
    hand_l = {"bce": lambda y: np_bce(y, P).mean(-1), "weighted_focal": lambda y: np_weighted_focal(y, P)}[name]
    hand = lam * hand_l(Y) + (1 - lam) * hand_l(Y[perm])
    mixed = losses.get(name, mixed=True)
    np.testing.assert_allclose(float(mixed(packed, P)), hand.mean(), rtol=1e-5)
    again = losses.MixedLoss.from_config(mixed.get_config())  # checkpoints store the loss by config
    np.testing.assert_allclose(float(again(packed, P)), hand.mean(), rtol=1e-5)
    if name == "bce":  # BCE is linear in the target: mixing losses == mixing labels
        mixed_targets = lam[:, None] * Y + (1 - lam[:, None]) * Y[perm]
        np.testing.assert_allclose(hand, np_bce(mixed_targets, P).mean(-1), rtol=1e-5)


def tiny_dual_branch():
    inputs = keras.Input((4,))
    att = keras.layers.Dense(5, activation="sigmoid", name="att")(inputs)
    clf = keras.layers.Dense(5, activation="sigmoid", name="clf")(inputs)
    return DualBranchTagger(keras.Model(inputs, {"att": att, "clf": clf}))


@pytest.mark.parametrize("name,mixed", [("bce", False), ("focal", False), ("weighted_focal", False),
                                        ("weighted_focal", True)])
def test_dual_output_loss_works_with_every_loss(name, mixed):
    model = tiny_dual_branch()
    model.compile("sgd", loss=losses.get(name, mixed=mixed))
    x = RNG.normal(size=(6, 4)).astype("float32")
    y = losses.pack(Y, Y[::-1], np.full(6, 0.7, "float32")).numpy() if mixed else Y
    outputs = model.branches(x)
    expected = np.mean([float(model.loss(y, outputs[k])) for k in ("att", "clf")])
    np.testing.assert_allclose(float(model.compute_loss(x, y, model(x))), expected, rtol=1e-5)
    history = model.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


A5_LR0 = 1e-4


@pytest.mark.parametrize("epoch,expected", [(0, A5_LR0), (49, A5_LR0), (50, A5_LR0),
                                            (150, A5_LR0 * (1 - 100 / 200)), (249, A5_LR0 * (1 - 199 / 200)),
                                            (250, A5_LR0 / 100), (399, A5_LR0 / 100)])
def test_cpjku_schedule_matches_a5(epoch, expected):
    cfg = TrainConfig(lr=A5_LR0, epochs=250, schedule="cpjku")
    (callback,) = schedules.callbacks(cfg)
    assert isinstance(callback, keras.callbacks.LearningRateScheduler)
    assert callback.schedule(epoch) == pytest.approx(expected, rel=1e-9)


def test_cpjku_scales_with_epochs_and_takes_options():
    short = schedules.callbacks(TrainConfig(lr=1.0, epochs=10, schedule="cpjku"))[0].schedule
    assert [short(e) for e in range(11)] == pytest.approx([1, 1, 1, .875, .75, .625, .5, .375, .25, .125, .01])
    cfg = TrainConfig(lr=1.0, epochs=300, schedule="cpjku", schedule_options={"decay_start": 50, "decay_end": 250,
                                                                              "warmup": 5})
    rate = schedules.callbacks(cfg)[0].schedule
    assert [rate(0), rate(4), rate(60), rate(260)] == pytest.approx([0.2, 1.0, 0.95, 0.01])
    with pytest.raises(ValueError, match="decay_start < decay_end"):
        schedules.callbacks(TrainConfig(epochs=10, schedule="cpjku", schedule_options={"decay_start": 12}))


def test_cosine_and_plateau():
    rate = schedules.callbacks(TrainConfig(lr=0.1, epochs=20, schedule="cosine"))[0].schedule
    for epoch in (0, 5, 10, 19):
        assert rate(epoch) == pytest.approx(0.05 * (1 + math.cos(math.pi * epoch / 20)), rel=1e-5)
    (plateau,) = schedules.callbacks(TrainConfig())
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau)
    assert (plateau.factor, plateau.patience, plateau.monitor) == (0.1, 5, "val_PR-AUC-macro")


def test_schedule_drives_the_optimizer_in_fit():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="sigmoid")])
    cfg = TrainConfig(lr=0.1, epochs=4, schedule="cosine")
    model.compile(optimizers.build(cfg), loss=losses.get("bce"))
    seen = []
    probe = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: seen.append(float(model.optimizer.learning_rate)))
    model.fit(RNG.normal(size=(4, 4)), Y[:4], epochs=4, verbose=0, callbacks=schedules.callbacks(cfg) + [probe])
    assert seen == pytest.approx([schedules.cosine_rate(e, 0.1, 4) for e in range(4)], rel=1e-5)


def test_optimizers():
    adam = optimizers.build(TrainConfig(lr=0.01, amsgrad=True))
    assert isinstance(adam, keras.optimizers.Adam) and adam.amsgrad and adam.weight_decay is None
    adamw = optimizers.build(TrainConfig(optimizer="adamw"))
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == pytest.approx(1e-2)
    sgd = optimizers.build(TrainConfig(optimizer="sgd", lr=1e-3, weight_decay=1e-4))
    assert sgd.nesterov and sgd.momentum == 0.9 and sgd.weight_decay == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="amsgrad"):
        optimizers.build(TrainConfig(optimizer="sgd", amsgrad=True))
    with pytest.raises(LookupError, match="Known optimizers: adam, adam_sgd, adamw, sgd"):
        TrainConfig(optimizer="rmsprop").validate()


def test_config_validation_and_cli_flags():
    with pytest.raises(ValueError, match="mixup_alpha"):
        TrainConfig(mixup_mode="losses").validate()
    with pytest.raises(ValueError, match="mixup_mode"):
        TrainConfig(mixup_mode="labels").validate()
    with pytest.raises(LookupError, match="Known schedules: cosine, cpjku, plateau, staged"):
        TrainConfig(schedule="step").validate()
    cfg = train_cli.config_from_args(train_cli.parse_args(
        ["--loss", "weighted_focal", "--schedule", "cpjku", "--schedule-option", "decay_start=3",
         "--optimizer", "adamw", "--weight-decay", "0.001", "--mixup-alpha", "0.3", "--mixup-mode", "losses",
         "--amsgrad", "--data", "records/x"]))
    assert (cfg.loss, cfg.schedule, cfg.schedule_options, cfg.optimizer, cfg.weight_decay, cfg.mixup_mode,
            cfg.amsgrad) == ("weighted_focal", "cpjku", {"decay_start": 3}, "adamw", 0.001, "losses", True)
