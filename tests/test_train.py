"""The first vertical slice end to end: tiny records -> fit -> summary, checkpoint, logs, SavedModel."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfmood import train as train_cli
from tfmood.evaluation.metrics import METRIC_KEYS
from tfmood.training.config import DEMO_OVERRIDES, TrainConfig
from tfmood.training.trainer import train


@pytest.fixture(scope="module")
def tiny_run(tiny_records, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(model="mobilenetv2", model_options={"alpha": 0.35}, data=tiny_records, epochs=2,
                      batch_size=8, crop_frames=32, eval_segments=2, out=str(out / "runs"),
                      export_dir=str(out / "saved_models"), name="tiny", verbose=0)
    return cfg, train(cfg)


def test_run_writes_summary_with_mtg_metric_names(tiny_run):
    cfg, summary = tiny_run
    run_dir = Path(cfg.out) / "tiny"
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["validation"] == summary["validation"]
    assert list(summary["validation"]) == list(METRIC_KEYS)
    assert all(0.0 <= v <= 1.0 for v in summary["validation"].values())
    assert (run_dir / "best.keras").exists()
    assert len((run_dir / "thresholds.tsv").read_text().splitlines()) == 56
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_saved_model_serves_any_length(tiny_run):
    cfg, summary = tiny_run
    path = Path(summary["saved_model"])
    assert path.parent == Path(cfg.export_dir) / "tiny" and path.name.isdigit()
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    for frames in (1, 45):
        out = fn(mel=tf.random.normal([2, 96, frames]))
        assert out["scores"].shape == (2, 56)
        assert np.all((out["scores"].numpy() >= 0) & (out["scores"].numpy() <= 1))


def test_tensorboard_logs_losses_metrics_and_learning_rate(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    cfg, _ = tiny_run
    logs = Path(cfg.out) / "tiny" / "logs"
    tags = {}
    for run in ("train", "validation"):
        acc = EventAccumulator(str(logs / run), size_guidance={"tensors": 0}).Reload()
        tags[run] = set(acc.Tags()["tensors"])
    assert {"epoch_loss", "epoch_PR-AUC-macro", "epoch_ROC-AUC-macro", "epoch_learning_rate"} <= tags["train"]
    assert {"epoch_loss", "epoch_PR-AUC-macro", "epoch_ROC-AUC-macro"} <= tags["validation"]


def test_cli_defaults_use_demo_settings_and_flags_override():
    cfg = train_cli.config_from_args(train_cli.parse_args([]))
    assert cfg.data is None and cfg.crop_frames == DEMO_OVERRIDES["crop_frames"]
    cfg = train_cli.config_from_args(train_cli.parse_args(
        ["--crop-frames", "64", "--model-option", "alpha=0.5", "--data", "records/x"]))
    assert cfg.crop_frames == 64 and cfg.model_options == {"alpha": 0.5} and cfg.epochs == TrainConfig.epochs
    with pytest.raises(ValueError, match="batch_size"):
        train_cli.config_from_args(train_cli.parse_args(["--batch-size", "0"]))


def test_cli_lists_models_and_rejects_unknown(capsys):
    assert train_cli.main(["--list-models"]) == 0
    assert "mobilenetv2" in capsys.readouterr().out
    with pytest.raises(LookupError, match="Known models: .*mobilenetv2"):
        train_cli.main(["--model", "resnet9000"])


def test_missing_records_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="tools/convert.py"):
        train(TrainConfig(data=str(tmp_path), out=str(tmp_path)))
