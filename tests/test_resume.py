"""Resuming killed runs (state files that agree with the backup) and deterministic training."""

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

from tfmood.training import resume

TRAIN_TINY = str(Path(__file__).with_name("train_tiny.py"))


def write_history(path, values):
    path.write_text("".join(json.dumps({"epoch": i + 1, "val_PR-AUC-macro": v}) + "\n"
                            for i, v in enumerate(values)) + '{"epoch": 9, "val_PR')  # a line cut by a kill


def test_history_keeps_backed_up_epochs_once_and_remembers_rolled_back_best(tmp_path):
    history = tmp_path / "history.jsonl"
    write_history(history, [0.1, 0.3, 0.5])
    resume.prepare_history(str(history), completed=2)
    assert [json.loads(line)["epoch"] for line in history.read_text().splitlines()] == [1, 2]
    assert json.loads((tmp_path / resume.ROLLED_BACK).read_text())["epoch"] == 3
    # best.keras may hold the rolled-back epoch 3: its value stays the checkpoint threshold
    assert resume.best_so_far(str(history), "val_PR-AUC-macro") == 0.5
    resume.prepare_history(str(history), completed=0)  # a fresh start: the old history is set aside
    assert not history.exists() and (tmp_path / "history.previous.jsonl").exists()
    assert resume.best_so_far(str(history), "val_PR-AUC-macro") is None


def test_completed_epochs_reads_the_backup_metadata(tmp_path):
    assert resume.completed_epochs(str(tmp_path)) == 0
    (tmp_path / resume.METADATA).write_text('{"epoch": 3, "batch": 0}')
    assert resume.completed_epochs(str(tmp_path)) == 3


def make_callbacks(path):
    callbacks = [keras.callbacks.ReduceLROnPlateau(), keras.callbacks.EarlyStopping(),
                 keras.callbacks.ModelCheckpoint(str(path / "m.keras"), save_best_only=True), keras.callbacks.History()]
    return callbacks, resume.ResumeState(str(path), callbacks)


def test_callback_counters_resume_from_the_state_matching_the_backup(tmp_path):
    callbacks, state = make_callbacks(tmp_path)
    plateau, early, checkpoint, _ = callbacks
    for epoch, wait in ((2, 1), (3, 2)):  # states after 1-based epochs 3 and 4
        plateau.wait, plateau.best, plateau.cooldown_counter = wait, 0.5, 0
        early.wait, early.best, early.best_epoch = wait + 1, 0.5, 1
        checkpoint.best = 0.5
        state.on_epoch_end(epoch)
    fresh, restored = make_callbacks(tmp_path)
    restored.on_epoch_begin(3)  # the backup completed 3 epochs: the epoch-4 state is ahead of it
    assert (fresh[0].wait, fresh[0].best, fresh[1].wait, fresh[1].best_epoch, fresh[2].best) == (1, 0.5, 2, 1, 0.5)
    fresh, restored = make_callbacks(tmp_path)
    restored.on_epoch_begin(4)
    assert (fresh[0].wait, fresh[1].wait) == (2, 3)


def run_tiny(records, out, epochs, extra=(), **popen):
    args = [sys.executable, TRAIN_TINY, "--model", "tiny_cnn", "--data", records, "--epochs", str(epochs),
            "--batch-size", "8", "--crop-frames", "32", "--eval-segments", "2", "--out", str(out), "--name", "r",
            "--no-export", *extra]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def wait_for_backup(path, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if json.loads(path.read_text())["epoch"] >= 1:
                return
        except (OSError, ValueError, KeyError):
            pass  # not there yet, or being written
        if proc.poll() is not None:
            pytest.fail(f"training ended before its first backup:\n{proc.stdout.read()}")
        time.sleep(0.05)
    pytest.fail("no backup within the timeout")


@pytest.mark.slow
def test_sigkilled_run_resumes_and_finishes(tiny_records, tmp_path):
    run_dir = tmp_path / "r"
    swa = ("--swa-start", "2", "--swa-every", "1")  # SWA collects after epochs 2, 3, 4
    proc = run_tiny(tiny_records, tmp_path, 4, swa, start_new_session=True)
    wait_for_backup(run_dir / "backup" / resume.METADATA, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    again = run_tiny(tiny_records, tmp_path, 4, swa)
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 0, output
    assert "epoch 1/4" not in output and "epoch 4/4" in output  # continued, not restarted
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]
    assert (run_dir / "summary.json").exists() and "swa" in json.loads((run_dir / "summary.json").read_text())
    with np.load(run_dir / "swa_state.npz") as state:
        assert int(state["n"]) == 3 and int(state["epoch"]) == 4  # no collection lost or counted twice


def train_weights(records, out, name, seed):
    import tiny_model  # noqa: F401
    from tfmood.training.config import TrainConfig
    from tfmood.training.trainer import train

    cfg = TrainConfig(model="tiny_cnn", data=records, epochs=2, batch_size=8, crop_frames=32, eval_segments=2,
                      out=str(out), name=name, export=False, seed=seed, deterministic=True, verbose=0)
    train(cfg)
    return keras.models.load_model(out / name / "best.keras").get_weights()


@pytest.mark.slow  # ~70 s: three short trainings
def test_deterministic_runs_give_identical_weights(tiny_records, tmp_path, restore_op_determinism):
    first = train_weights(tiny_records, tmp_path, "a", seed=5)
    second = train_weights(tiny_records, tmp_path, "b", seed=5)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = train_weights(tiny_records, tmp_path, "c", seed=6)  # the comparison can fail
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))
