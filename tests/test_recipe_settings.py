"""The recipes' real settings (issue 8 section 3): the staged Adam -> SGD optimiser and its resumable schedule,
model selection on the source's metric, RandomResizedCrop and the time roll as the originals drew them, per-band
standardisation, first-frames evaluation and SELAB's weighted focal loss."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfmood.data import band_stats, pipeline, recipe_augment
from tfmood.training import losses, optimizers, resume, schedules
from tfmood.training.config import TrainConfig

TRAIN_TINY = str(Path(__file__).with_name("train_tiny.py"))
RNG = np.random.default_rng(0)


# --- the staged optimiser -----------------------------------------------------------------------------------

def _quadratic(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(7, 5)).astype("float32"), rng.normal(size=7).astype("float32"), \
        rng.normal(size=5).astype("float32")


# (stage, rate) of each step: Adam, then SGD at 1e-3, then the rate dropped to 1e-4 (momentum buffer kept)
STEPS = [(0, 1e-2)] * 4 + [(1, 1e-2)] * 4 + [(2, 1e-3)] * 4


def _keras_trajectory(steps=STEPS, weight_decay=1e-4):
    a, b, w0 = _quadratic()
    w = keras.Variable(w0)
    opt = optimizers.AdamThenSGD(steps[0][1], sgd_weight_decay=weight_decay)
    out = []
    for stage, rate in steps:
        opt.stage.assign(stage)
        opt.learning_rate.assign(rate)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(tf.linalg.matvec(a, w) - b))
        opt.apply_gradients([(tape.gradient(loss, w), w)])
        out.append(np.array(w.numpy()))
    return np.stack(out)


def test_adam_then_sgd_follows_pytorch_adam_then_nesterov_sgd_with_coupled_decay():
    torch = pytest.importorskip("torch")
    a, b, w0 = _quadratic()
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    at, bt = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    # the originals' solver: torch.optim.Adam, then a new SGD(momentum .9, nesterov, weight_decay 1e-4) whose
    # rate is later lowered through param_groups (its momentum buffer carries over)
    opt, current, expected = torch.optim.Adam([w], lr=STEPS[0][1]), 0, []
    for stage, rate in STEPS:
        if stage == 1 and current == 0:
            opt = torch.optim.SGD([w], lr=rate, momentum=0.9, weight_decay=1e-4, nesterov=True)
        for group in opt.param_groups:
            group["lr"] = rate
        current = stage
        opt.zero_grad()
        ((at @ w - bt) ** 2).sum().backward()
        opt.step()
        expected.append(w.detach().numpy().copy())
    np.testing.assert_allclose(_keras_trajectory(), np.stack(expected), rtol=2e-5, atol=2e-6)


def test_adam_then_sgd_differs_from_keras_decoupled_sgd():
    """The coupled decay matters: without it (Keras' own SGD semantics) the SGD stages land elsewhere."""
    with_decay, without = _keras_trajectory(weight_decay=1e-1), _keras_trajectory(weight_decay=0.0)
    np.testing.assert_array_equal(with_decay[:4], without[:4])  # Adam stage: no decay at all
    assert np.abs(with_decay[-1] - without[-1]).max() > 1e-4


def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    model.compile(optimizers.AdamThenSGD(1e-2), "mse")
    return model


def test_optimizer_state_round_trips_through_a_backup_mid_stage(tmp_path):
    """BackupAndRestore saves `save_weights`: a fresh process restores the stage, rate and momenta, and the
    continued training equals the uninterrupted one."""
    x, y = RNG.normal(size=(16, 3)).astype("float32"), RNG.normal(size=(16, 2)).astype("float32")
    keras.utils.set_random_seed(1)
    model = _tiny_model()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)   # Adam
    model.optimizer.stage.assign(2)
    model.optimizer.learning_rate.assign(1e-3)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)   # SGD, momentum buffers filled
    path = str(tmp_path / "backup.weights.h5")
    model.save_weights(path)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    keras.utils.set_random_seed(2)
    fresh = _tiny_model()                                               # as a resumed process builds it
    fresh.fit(x[:4], y[:4], batch_size=4, epochs=1, verbose=0)          # builds the slots, then is overwritten
    fresh.load_weights(path)
    assert int(fresh.optimizer.stage.numpy()) == 2 and np.isclose(float(fresh.optimizer.learning_rate), 1e-3)
    fresh.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_stage_boundary_reloads_best_weights_and_keeps_the_optimizer(tmp_path):
    x, y = RNG.normal(size=(16, 3)).astype("float32"), RNG.normal(size=(16, 2)).astype("float32")
    model = _tiny_model()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    best = str(tmp_path / "best.keras")
    model.save(best)
    best_weights = model.get_weights()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)      # moves away from best
    state = [v.numpy().copy() for v in model.optimizer.variables]
    callback = schedules.StagedOptimizer(best, 1e-4, boundaries=[3, 5], sgd_rates=[1e-3, 1e-5], verbose=False)
    callback.set_model(model)
    callback.on_epoch_end(1)                                # not a boundary: nothing happens
    assert not np.array_equal(model.get_weights()[0], best_weights[0])
    callback.on_epoch_end(2)                                # end of the 3rd epoch: stage 1 starts next
    for a, b in zip(model.get_weights(), best_weights):
        np.testing.assert_array_equal(a, b)
    for v, s in zip(model.optimizer.variables, state):     # load_weights alone would have rolled these back
        np.testing.assert_array_equal(v.numpy(), s)
    assert [callback.stage_of(e) for e in range(7)] == [0, 0, 0, 1, 1, 2, 2]
    callback.on_epoch_begin(3)
    assert int(model.optimizer.stage.numpy()) == 1 and np.isclose(float(model.optimizer.learning_rate), 1e-3)
    callback.on_epoch_begin(5)
    assert int(model.optimizer.stage.numpy()) == 2 and np.isclose(float(model.optimizer.learning_rate), 1e-5)


def test_staged_schedule_needs_its_optimizer_and_valid_options():
    with pytest.raises(ValueError, match="adam_sgd"):
        TrainConfig(schedule="staged").validate()
    with pytest.raises(ValueError, match="staged"):
        TrainConfig(optimizer="adam_sgd").validate()
    assert schedules.staged_boundaries(120) == ([60, 80, 100], [1e-3, 1e-4, 1e-5])  # AMLAG's, scaled from epochs
    with pytest.raises(ValueError, match="sgd_epochs"):
        schedules.staged_boundaries(10, adam_epochs=2, sgd_epochs=0)


def _run_tiny(records, out, epochs, extra=(), **popen):
    args = [sys.executable, TRAIN_TINY, "--model", "tiny_cnn", "--data", records, "--epochs", str(epochs),
            "--batch-size", "8", "--crop-frames", "32", "--eval-segments", "2", "--out", str(out), "--name", "r",
            "--no-export", "--optimizer", "adam_sgd", "--schedule", "staged", "--schedule-option", "adam_epochs=1",
            "--schedule-option", "sgd_epochs=1", "--lr", "0.002", *extra]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


@pytest.mark.slow  # two short CLI trainings (~1.5 min on 2 cores)
def test_staged_run_killed_in_an_sgd_stage_resumes_in_the_right_stage(tiny_records, tmp_path):
    metadata = tmp_path / "r" / "backup" / resume.METADATA
    proc = _run_tiny(tiny_records, tmp_path, 4, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once epoch 2 (the first SGD epoch) is backed up
        try:
            if json.loads(metadata.read_text())["epoch"] >= 2:
                break
        except (OSError, ValueError, KeyError):
            pass
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    completed = resume.completed_epochs(str(tmp_path / "r" / "backup"))
    assert completed in (2, 3)
    again = _run_tiny(tiny_records, tmp_path, 4)
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 0, output
    epochs = [line for line in output.splitlines() if line.startswith("epoch ")]
    # resumed after the backup, each epoch at its stage's rate: 2e-3 (Adam), then SGD 1e-3, 1e-4, 1e-5
    rates = {1: "2.00e-03", 2: "1.00e-03", 3: "1.00e-04", 4: "1.00e-05"}
    assert [int(line.split()[1].split("/")[0]) for line in epochs] == list(range(completed + 1, 5))
    for line in epochs:
        assert line.endswith(f"lr {rates[int(line.split()[1].split('/')[0])]}"), line
    reloads = [line for line in output.splitlines() if line.startswith("staged schedule: reloaded")]
    assert len(reloads) == 3 - completed  # the boundaries still ahead after the backup, once each


# --- model selection ------------------------------------------------------------------------------------------

def test_monitor_names_and_modes():
    from tfmood.training.config import monitor_branch, monitor_mode

    assert monitor_mode("val_loss") == "min" and monitor_mode("val_att_ROC-AUC-macro") == "max"
    assert monitor_branch("val_att_ROC-AUC-macro") == "att" and monitor_branch("val_ROC-AUC-macro") is None
    with pytest.raises(ValueError, match="val_ROC-AUC-macro"):
        TrainConfig(monitor="val_roc").validate()
    history = Path(pytest.importorskip("tempfile").mkdtemp()) / "history.jsonl"
    history.write_text("".join(json.dumps({"epoch": i + 1, "val_loss": v}) + "\n" for i, v in enumerate([.3, .1, .2])))
    assert resume.best_so_far(str(history), "val_loss", "min") == 0.1


@pytest.mark.slow  # a 3-epoch training
def test_best_checkpoint_is_the_epoch_with_the_lowest_val_loss_when_monitoring_it(tiny_records, tmp_path):
    import tiny_model  # noqa: F401
    from tfmood.training.callbacks import bce
    from tfmood.training.trainer import train

    cfg = TrainConfig(model="tiny_cnn", data=tiny_records, epochs=3, batch_size=8, crop_frames=32, eval_segments=2,
                      out=str(tmp_path), name="m", export=False, monitor="val_loss", lr=0.05, verbose=0)
    train(cfg)
    history = [json.loads(line) for line in (tmp_path / "m" / "history.jsonl").read_text().splitlines()]
    best = keras.models.load_model(tmp_path / "m" / "best.keras")
    _, scores, labels = pipeline.predict_tracks(best, tiny_records, "validation", 32, 2, 8)
    assert np.isclose(bce(labels, scores), min(r["val_loss"] for r in history), rtol=1e-5)


def test_branch_monitor_scores_the_attention_branch(tiny_records):
    from tfmood import models
    from tfmood.evaluation.metrics import official_metrics
    from tfmood.training.callbacks import TrackEvaluation, branch_predictor

    model = models.build("attention_mobilenetv2", input_shape=(96, None, 1), alpha=0.35, segment_frames=32,
                         hidden=32, conv_width=32, ffn=64, heads=2, head_padding="same")
    evaluation = TrackEvaluation(tiny_records, "validation", 64, 2, 8, branches=True)
    evaluation.set_model(model)
    logs = {}
    evaluation.on_epoch_end(0, logs)
    # the attention branch alone, scored the plain way (mean over the same 2 segments)
    _, att, labels = pipeline.predict_tracks(lambda x: model.branches(x, training=False)["att"], tiny_records,
                                             "validation", 64, 2, 8)
    _, columns, _ = pipeline.predict_tracks(branch_predictor(model), tiny_records, "validation", 64, 2, 8)
    _, mean, _ = pipeline.predict_tracks(model, tiny_records, "validation", 64, 2, 8)
    np.testing.assert_allclose(columns[:, 56:112], att, atol=1e-5)   # [scores | att | clf]
    np.testing.assert_allclose(columns[:, :56], mean, atol=1e-5)
    # the logged figures are those of the attention branch's scores (an untrained model's scores nearly tie,
    # so they are compared on the same tensor, not across separately compiled passes)
    assert logs["val_att_ROC-AUC-macro"] == official_metrics(labels, columns[:, 56:112])["ROC-AUC-macro"]
    assert logs["val_ROC-AUC-macro"] == official_metrics(labels, columns[:, :56])["ROC-AUC-macro"]
    assert logs["val_att_ROC-AUC-macro"] != logs["val_clf_ROC-AUC-macro"]


def test_first_frames_evaluation_scores_the_start_of_each_track(tiny_records):
    """AMLAG's protocol: `eval_segments=1` is one crop at frame 0 of each track."""
    from tfmood.data import schema
    from tfmood.data.convert import read_manifest

    calls = []
    pipeline.predict_tracks(lambda x: calls.append(np.asarray(x)) or np.zeros((len(x), 56), "float32"),
                            tiny_records, "validation", 32, 1, 4)
    seen = np.concatenate(calls)[..., 0]
    dtype = read_manifest(tiny_records)["dtype"]
    records = tf.data.TFRecordDataset(pipeline.list_shards(tiny_records, "validation")[:1]).take(3)
    firsts = [schema.parse(r, dtype)["features"].numpy()[:, :32] for r in records]
    for first in firsts:  # shard 0 holds tracks 0, 2, 4, ... of the split (round-robin)
        assert any(np.array_equal(first, s) for s in seen)


# --- crop transforms ------------------------------------------------------------------------------------------

def _bilinear_reference(box, out_h, out_w):
    """Half-pixel bilinear resize (OpenCV INTER_LINEAR / PyTorch align_corners=False), written out in numpy."""
    h, w = box.shape

    def axis(n_out, n_in):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        low = np.floor(pos).astype(int)
        return low, np.minimum(low + 1, n_in - 1), pos - low

    r0, r1, fr = axis(out_h, h)
    c0, c1, fc = axis(out_w, w)
    rows = box[r0] + (box[r1] - box[r0]) * fr[:, None]
    return rows[:, c0] + (rows[:, c1] - rows[:, c0]) * fc[None, :]


@pytest.mark.parametrize("shape, box", [((96, 4096), (0, 1937, 96, 221)),   # systems.md B1: 96 x 221, central
                                        ((96, 960), (0, 369, 96, 221)),     # SELAB's crop
                                        ((96, 64), (29, 0, 38, 64))])       # a smoke crop: narrower than 1.7
def test_random_resized_crop_falls_back_to_the_central_box(shape, box):
    x = tf.constant(RNG.normal(size=(3, *shape)), tf.float32)
    top, left, height, width = recipe_augment.crop_boxes(tf.shape(x), tf.constant([4, 2], tf.int64),
                                                         (0.8, 1.0), (1.7, 2.3))
    assert {tuple(int(t[i]) for t in (top, left, height, width)) for i in range(3)} == {box}
    fn = recipe_augment.random_resized_crop(probability=1.0)
    out = fn(x, None, tf.constant([1, 1], tf.int64))[0].numpy()
    t, l, h, w = box
    for i in range(3):
        np.testing.assert_allclose(out[i], _bilinear_reference(x.numpy()[i, t:t + h, l:l + w], *shape), atol=1e-5)
    torch = pytest.importorskip("torch")
    crop = torch.tensor(x.numpy()[:, None, t:t + h, l:l + w])
    ref = torch.nn.functional.interpolate(crop, size=shape, mode="bilinear", align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)  # PyTorch computes the weights in float32 (~5e-5 off)


def test_random_resized_crop_boxes_follow_torchvision_when_they_fit():
    """96 x 200: some attempts fit. The (height, width) law matches torchvision's get_params (two-sample tests)."""
    torchvision = pytest.importorskip("torchvision")
    torch = pytest.importorskip("torch")
    n = 4000
    _, _, h, w = recipe_augment.crop_boxes(tf.constant([n, 96, 200]), tf.constant([7, 3], tf.int64),
                                           (0.8, 1.0), (1.7, 2.3))
    torch.manual_seed(0)
    img = torch.zeros(1, 96, 200)
    ref = np.array([torchvision.transforms.RandomResizedCrop.get_params(img, [0.8, 1.0], [1.7, 2.3])[2:]
                    for _ in range(n)])
    assert stats.ks_2samp(h.numpy(), ref[:, 0]).pvalue > 1e-3
    assert stats.ks_2samp(w.numpy(), ref[:, 1]).pvalue > 1e-3
    fallback = (h.numpy() == 96) & (w.numpy() == 200)  # in-range aspect: the whole crop
    assert abs(fallback.mean() - np.mean((ref[:, 0] == 96) & (ref[:, 1] == 200))) < 0.04


def _transformed_batches(records, transforms, epochs=2, spec_augment=False):
    ds = pipeline.train_dataset(records, batch_size=8, crop_frames=32, crops_per_track=1, spec_augment=spec_augment,
                                seed=3, deterministic=True, crop_transforms=transforms)
    return [[x.numpy()[..., 0] for x, _ in ds] for _ in range(epochs)]


def test_random_resized_crop_applies_to_a_third_of_the_crops_in_the_pipeline(tiny_records):
    plain = _transformed_batches(tiny_records, [])
    resized = _transformed_batches(tiny_records, [dict(name="random_resized_crop", probability=0.33)])
    changed = [np.array([not np.array_equal(a, b) for pb, rb in zip(p_epoch, r_epoch) for a, b in zip(pb, rb)])
               for p_epoch, r_epoch in zip(plain, resized)]  # same crops: only the transform differs
    flags = np.concatenate(changed)
    assert len(flags) == 128 and stats.binomtest(int(flags.sum()), len(flags), 0.33).pvalue > 1e-3
    assert not np.array_equal(changed[0], changed[1])  # a new epoch draws afresh


def test_time_roll_draws_uniform_shifts_fresh_per_epoch_in_the_pipeline(tiny_records):
    plain = _transformed_batches(tiny_records, [])
    rolled = _transformed_batches(tiny_records, [dict(name="time_roll", max_shift=10)])
    shifts = []
    for p_epoch, r_epoch in zip(plain, rolled):
        epoch_shifts = []
        for pb, rb in zip(p_epoch, r_epoch):
            for p, r in zip(pb, rb):
                match = [s for s in range(-10, 11) if np.array_equal(np.roll(p, s, axis=1), r)]
                assert match, "each example is a circular roll of its crop"
                epoch_shifts.append(match[0] if len(match) == 1 else None)
        shifts.append(epoch_shifts)
    drawn = np.array([s for epoch in shifts for s in epoch if s is not None])
    counts = np.bincount(drawn + 10, minlength=21)
    assert stats.chisquare(counts).pvalue > 1e-3  # uniform on -10..10, both ends included
    assert shifts[0] != shifts[1]                 # a new epoch draws new shifts


def test_crop_transform_specs_are_checked():
    with pytest.raises(ValueError, match="probability"):
        recipe_augment.build([dict(name="random_resized_crop", probability=2)])
    with pytest.raises(LookupError, match="time_roll"):
        recipe_augment.build([dict(name="flip")])
    with pytest.raises(ValueError, match="name"):
        recipe_augment.build([{"max_shift": 3}])


# --- per-band standardisation ---------------------------------------------------------------------------------

def test_band_stats_are_the_training_splits_cached_and_refreshed(tiny_records, tmp_path, monkeypatch):
    import shutil

    from tfmood.data import schema
    from tfmood.data.convert import MANIFEST, read_manifest

    records = str(tmp_path / "records")
    shutil.copytree(tiny_records, records)
    dtype = read_manifest(records)["dtype"]
    frames = np.concatenate([schema.parse(r, dtype)["features"].numpy().astype(np.float64)
                             for r in tf.data.TFRecordDataset(pipeline.list_shards(records, "train"))], axis=1)
    mean, std = band_stats.load_or_compute(records, verbose=False)
    np.testing.assert_allclose(mean, frames.mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(std, frames.std(axis=1), rtol=1e-9)
    cached = json.loads((Path(records) / band_stats.STATS_FILE).read_text())
    assert cached["frames"] == frames.shape[1]
    monkeypatch.setattr(band_stats, "compute", lambda *a: pytest.fail("recomputed despite a valid cache"))
    np.testing.assert_array_equal(band_stats.load_or_compute(records, verbose=False)[0], mean)
    monkeypatch.undo()
    manifest = Path(records) / MANIFEST
    manifest.write_text(manifest.read_text().replace("}", ', "touched": 1}', 1))  # a re-converted dataset
    calls = []
    real = band_stats.compute
    monkeypatch.setattr(band_stats, "compute", lambda *a: calls.append(a) or real(*a))
    band_stats.load_or_compute(records, verbose=False)
    assert calls


def test_standardized_model_applies_x_minus_mean_over_std_per_band():
    inner = keras.Sequential([keras.Input((4, None, 1)), keras.layers.Lambda(lambda t: t)])
    mean, std = np.array([1.0, -2.0, 0.5, 3.0]), np.array([2.0, 0.5, 1.0, 4.0])
    model = band_stats.standardized(inner, mean, std)
    x = RNG.normal(size=(2, 4, 6, 1)).astype("float32")
    np.testing.assert_allclose(model(x).numpy(), (x - mean[None, :, None, None]) / std[None, :, None, None],
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="bands"):
        band_stats.standardized(inner, mean[:3], std[:3])


# --- SELAB's weighted focal loss --------------------------------------------------------------------------

def test_weighted_focal_matches_selabs_code_on_logits():
    """phoaiphuthinh/MediaEval2021Emotions loss.py: BCE-with-logits per entry, alpha .25 where the target is 0
    and .75 where it is > 0 (mixup's soft labels too), (1 - exp(-BCE))**2; the per-sample mean over tags ranks
    co-teaching samples and the batch mean is the update loss."""
    torch = pytest.importorskip("torch")
    logits = RNG.normal(scale=2.0, size=(6, 56)).astype("float32")
    targets = (RNG.random((6, 56)) < 0.1).astype("float32") * RNG.choice([1.0, 0.6], size=(6, 56)).astype("float32")
    lt, tt = torch.tensor(logits), torch.tensor(targets)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(lt, tt, reduction="none")
    at = torch.where(tt > 0, torch.tensor(0.75), torch.tensor(0.25))
    reference = (at * (1 - torch.exp(-bce)) ** 2 * bce).mean(dim=1).numpy()
    ours = losses.get("weighted_focal", reduction=None)(targets, tf.sigmoid(logits)).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-4)
