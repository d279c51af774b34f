"""Co-teaching: the cross-update by hand, distributed loss scaling, the forget-rate ramp, save/resume, train()."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import tiny_model  # noqa: F401  (registers "tiny_cnn")
from tfmood.models.dual_branch import DualBranchTagger
from tfmood.training import losses
from tfmood.training.config import TrainConfig
from tfmood.training.coteaching import CoTeaching, ForgetRateSchedule, forget_rate_at

REPO = Path(__file__).resolve().parents[1]
X = np.array([[0.5, -1.0, 0.2], [1.5, 0.3, -0.7], [-0.4, 0.8, 1.1], [0.9, -0.2, 0.4]], "float32")
Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], "float32")
WA = (np.array([[0.9, -0.5], [0.3, 0.8], [-1.2, 0.4]], "float32"), np.array([0.1, -0.2], "float32"))
WB = (np.array([[-0.6, 0.7], [1.1, -0.3], [0.5, 0.9]], "float32"), np.array([-0.3, 0.2], "float32"))
LR = 0.5


def dense_net(weights, name):
    inputs = keras.Input((3,))
    net = keras.Model(inputs, keras.layers.Dense(2, activation="sigmoid")(inputs), name=name)
    net.set_weights(list(weights))
    return net


def np_step(weights, rows):
    """SGD on mean-over-tags BCE of a sigmoid Dense layer, averaged over `rows` of the batch."""
    kernel, bias = weights
    p = 1 / (1 + np.exp(-(X @ kernel + bias)))
    dz = (p - Y)[rows] / (len(rows) * Y.shape[1])
    return kernel - LR * X[rows].T @ dz, bias - LR * dz.sum(axis=0)


def np_sample_losses(weights):
    p = 1 / (1 + np.exp(-(X @ weights[0] + weights[1])))
    return -(Y * np.log(p) + (1 - Y) * np.log(1 - p)).mean(axis=1)


@pytest.mark.parametrize("xla", [False, True])
def test_each_net_is_updated_on_the_samples_its_peer_keeps(xla):
    keep_a = np.sort(np.argsort(np_sample_losses(WA))[:3])  # forget rate .25 of 4 samples: keep 3
    keep_b = np.sort(np.argsort(np_sample_losses(WB))[:3])
    assert set(keep_a) != set(keep_b)  # the data were chosen so the nets disagree
    pair = CoTeaching(dense_net(WA, "a"), dense_net(WB, "b"))
    pair.compile(keras.optimizers.SGD(LR), loss="bce", jit_compile=xla)  # XLA: as on a GPU by default
    pair.forget_rate.assign(0.25)
    logs = pair.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    for net, mine, peer in ((pair.net_a, WA, keep_b), (pair.net_b, WB, keep_a)):
        expected = np_step(mine, peer)
        for got, want in zip(net.get_weights(), expected):
            np.testing.assert_allclose(got, want, atol=1e-6)
    self_update = np_step(WA, keep_a)[0]
    assert not np.allclose(pair.net_a.get_weights()[0], self_update, atol=1e-4)
    assert logs["kept_fraction"] == [0.75]
    assert logs["agreement"] == [len(set(keep_a) & set(keep_b)) / 4]
    assert logs["loss_a"][0] == pytest.approx(np_sample_losses(WA)[keep_b].mean(), rel=1e-5)
    assert logs["loss"][0] == pytest.approx((np_sample_losses(WA)[keep_b].mean()
                                             + np_sample_losses(WB)[keep_a].mean()) / 2, rel=1e-5)


def test_call_is_the_mean_of_both_nets():
    pair = CoTeaching(dense_net(WA, "a"), dense_net(WB, "b"))
    expected = (pair.net_a.predict(X, verbose=0) + pair.net_b.predict(X, verbose=0)) / 2
    np.testing.assert_allclose(pair.predict(X, verbose=0), expected, atol=1e-6)
    assert set(pair.networks) == {"a", "b"}


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from tfmood.training.coteaching import CoTeaching

    def net(seed, name, regularizer=None):
        inputs = keras.Input((3,))
        dense = keras.layers.Dense(4, activation="sigmoid", kernel_regularizer=regularizer,
                                   kernel_initializer=keras.initializers.GlorotUniform(seed))
        return keras.Model(inputs, dense(inputs), name=name)

    def one_step(strategy, x, y, forget_rate):
        with strategy.scope():
            pair = CoTeaching(net(1, "a", keras.regularizers.L2(0.05)), net(2, "b"))
            pair.compile(keras.optimizers.SGD(0.5), loss="weighted_focal")  # SGD: no scale invariance
            pair.forget_rate.assign(forget_rate)
        pair.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x)), epochs=1, verbose=0)
        return [w.numpy() for w in pair.net_a.weights + pair.net_b.weights]

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    y = (rng.random((8, 4)) < 0.5).astype("float32")
    half_x, half_y = np.concatenate([x[:4], x[:4]]), np.concatenate([y[:4], y[:4]])
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    single = tf.distribute.get_strategy()
    result = {"replicas": mirrored.num_replicas_in_sync}
    for case, (cx, cy, rate) in {"forget0": (x, y, 0.0), "identical_halves": (half_x, half_y, 0.25)}.items():
        a, b = one_step(single, cx, cy, rate), one_step(mirrored, cx, cy, rate)
        start = [w.numpy() for w in net(1, "a").weights]
        result[case] = {"max_diff": max(float(np.abs(p - q).max()) for p, q in zip(a, b)),
                        "moved": float(np.abs(a[0] - start[0]).max())}
    print("RESULT" + json.dumps(result))
""")


def test_mirrored_step_on_two_replicas_equals_the_single_device_step():
    """Per-replica ranking equals global ranking when the forget rate is 0, or when both replicas hold the same
    samples (then each keeps the same 3 of its 4 and the global ranking keeps those 6 of 8)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, run.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT"):])
    assert result["replicas"] == 2
    for case in ("forget0", "identical_halves"):
        assert result[case]["moved"] > 1e-3  # the step did something, so equal weights mean equal gradients
        assert result[case]["max_diff"] < 1e-6, result


def test_forget_rate_ramp():
    assert [forget_rate_at(e, 0.2, 4) for e in range(6)] == pytest.approx([0, 0.05, 0.1, 0.15, 0.2, 0.2])
    assert [forget_rate_at(e, 0.05, 0) for e in range(3)] == [0.05, 0.05, 0.05]  # SELAB: constant
    with pytest.raises(ValueError, match="forget_rate"):
        ForgetRateSchedule(1.0)


def test_forget_rate_is_set_per_epoch_saved_and_resumed(tmp_path):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    def fresh_pair():
        pair = CoTeaching(dense_net(WA, "a"), dense_net(WB, "b"))
        pair.compile(keras.optimizers.Adam(0.01), loss=losses.get("focal"))
        return pair

    schedule = ForgetRateSchedule(0.3, forget_epochs=3)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="interrupted"):
        fresh_pair().fit(X, Y, batch_size=4, epochs=4, verbose=0, callbacks=[schedule, backup, Interrupt()])
    resumed = fresh_pair()
    logs = resumed.fit(X, Y, batch_size=4, epochs=4, verbose=0, callbacks=[schedule, backup]).history
    assert logs["forget_rate"] == pytest.approx([0.2, 0.3])  # epochs 3 and 4 only: it resumed
    assert logs["kept_fraction"] == [0.75, 0.5]  # int(.8 * 4) = 3 and int(.7 * 4) = 2 of 4 samples
    path = str(tmp_path / "pair.keras")
    resumed.save(path)
    loaded = keras.models.load_model(path)
    assert float(loaded.forget_rate) == pytest.approx(0.3)
    assert isinstance(loaded.sample_loss, keras.losses.BinaryFocalCrossentropy)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), resumed.predict(X, verbose=0), atol=1e-6)


def dual_branch_net(seed):
    inputs = keras.Input((3,))
    init = keras.initializers.GlorotUniform(seed)
    outputs = {k: keras.layers.Dense(2, activation="sigmoid", kernel_initializer=init, name=k)(inputs)
               for k in ("att", "clf")}
    return DualBranchTagger(keras.Model(inputs, outputs))


def test_two_branch_nets_are_ranked_on_their_dual_output_loss():
    pair = CoTeaching(dual_branch_net(1), dual_branch_net(2))
    pair.compile("sgd", loss="bce")
    scores, per_sample = pair._sample_losses(pair.net_a, X, Y, training=False)
    branches = pair.net_a.branches(X)
    expected = np.mean([pair.sample_loss(Y, branches[k]) for k in ("att", "clf")], axis=0)
    np.testing.assert_allclose(per_sample, expected, rtol=1e-6)
    assert np.isfinite(pair.fit(X, Y, batch_size=4, epochs=1, verbose=0).history["loss"][0])


def test_mixed_losses_rank_on_the_mixed_per_sample_loss():
    pair = CoTeaching(dense_net(WA, "a"), dense_net(WB, "b"))
    pair.compile("sgd", loss=losses.get("bce", mixed=True))
    lam = np.array([0.5, 0.7, 0.9, 1.0], "float32")
    packed = losses.pack(Y, Y[::-1], lam).numpy()
    _, per_sample = pair._sample_losses(pair.net_a, X, packed, training=False)
    bce = losses.per_sample(losses.get("bce"))
    scores = pair.net_a(X)
    np.testing.assert_allclose(per_sample, lam * bce(Y, scores) + (1 - lam) * bce(Y[::-1], scores), rtol=1e-5)
    assert np.isfinite(pair.fit(X, packed, batch_size=4, epochs=1, verbose=0).history["loss"][0])


def test_coteaching_train_run_writes_summary_checkpoints_and_exports(tiny_records, tmp_path):
    from tfmood.training.trainer import train
    cfg = TrainConfig(model="tiny_cnn", peer="tiny_cnn", forget_rate=0.25, forget_epochs=0, data=tiny_records,
                      epochs=1, batch_size=8, crop_frames=32, eval_segments=2, out=str(tmp_path / "runs"),
                      export_dir=str(tmp_path / "saved"), name="pair", loss="weighted_focal", verbose=0)
    summary = train(cfg)
    run = tmp_path / "runs" / "pair"
    assert json.loads((run / "summary.json").read_text())["networks"].keys() == {"a", "b"}
    assert isinstance(keras.models.load_model(run / "best.keras"), CoTeaching)
    for key in ("a", "b"):
        member = summary["networks"][key]
        assert 0 <= member["validation"]["PR-AUC-macro"] <= 1
        assert Path(member["checkpoint"]).exists() and Path(member["saved_model"]).parent.name == f"pair-{key}"
    assert Path(summary["saved_model"]).parent.name == "pair"
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert history[0]["kept_fraction"] == pytest.approx(0.75) and "agreement" in history[0]
