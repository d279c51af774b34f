"""Recipes (tfmood.recipes): every published system's config validates, runs end to end in smoke mode, and
the `python -m tfmood.train` recipe flags (--recipe, --smoke, --list-recipes, --pretrain) behave."""

import dataclasses
import os

import numpy as np
import pytest

from tfmood import models, recipes
from tfmood.train import config_from_args, main, parse_args

NAMES = ["hcmus2020-mel-effb0", "hcmus2020-wavenet-mobilenetv2", "hcmus2020-wavenet-effb7",
         "selab2021-coteach-effb0-rexnet", "cpjku2019-faresnet", "cpjku2019-shake-faresnet", "cpjku2019-resnet34",
         "cpjku2019-crnn", "amlag2019-mobilenetv2", "amlag2019-attention", "uai2020-resnet34-attention",
         "taiinn2019-vqvae-gru", "taiinn2019-vqvae-cnn", "mtg-vggish-baseline"]


def test_registry_holds_exactly_the_published_systems():
    assert recipes.names() == sorted(NAMES)
    with pytest.raises(LookupError, match="cpjku2019-faresnet"):
        recipes.get("cpjku2019-nonesuch")


@pytest.mark.parametrize("name", NAMES)
def test_full_config_validates_and_names_registered_models(name):
    cfg = recipes.get(name)
    assert cfg.model in models.names()
    assert cfg.peer is None or cfg.peer in models.names()
    assert cfg.name == name and cfg.data.startswith("records/jamendo-") and cfg.export
    assert cfg.epochs >= 35 and cfg.crop_frames >= 800  # real crops (CP-JKU runs 4-5: 30 s at hop 1536 = 861)
    published = recipes.published(name)
    assert 0.03 < published.pr_auc_macro < 0.2
    assert published.roc_auc_macro is None or 0.5 < published.roc_auc_macro < 0.8
    doc = recipes.RECIPES.get(name).__doc__
    assert f"--recipe {name}" in doc and ("seeds/" in doc or "MTG/mtg-jamendo-dataset" in doc)
    assert f"{published.pr_auc_macro:.4f}".rstrip("0") in doc
    # every recipe says where each setting comes from, and why when it is not the code's
    settings = recipes.settings(name)
    assert settings and all(s.source in ("code", "paper", "both", "neither") for s in settings)
    assert all(s.why for s in settings if s.source in ("paper", "neither"))


@pytest.mark.parametrize("name", NAMES)
def test_smoke_config_is_tiny_and_on_demo_data(name):
    full, cfg = recipes.get(name), recipes.get(name, smoke=True)
    assert cfg.data is None and cfg.demo_bands in (16, 96)
    assert (cfg.epochs, cfg.batch_size, cfg.eval_segments, cfg.crops_per_track) == (1, 8, 2, 1)
    assert 32 <= cfg.crop_frames <= 64 and cfg.name == f"{name}-smoke"
    # the recipe's machinery stays on, only shrunk
    assert (cfg.loss, cfg.schedule, cfg.mixup_mode, cfg.label_balancing) == (
        full.loss, full.schedule, full.mixup_mode, full.label_balancing)
    assert (cfg.swa_start is None) == (full.swa_start is None) and (cfg.peer is None) == (full.peer is None)
    assert cfg.model_options != full.model_options  # a tiny variant


def test_docs_list_every_recipe_with_its_scores():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text()
    for name in NAMES:
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{name}` |"))
        published = recipes.published(name)
        assert f"| {published.pr_auc_macro:.4f}".rstrip("0") in row
        assert ("n/a" if published.roc_auc_macro is None else f"{published.roc_auc_macro:.4f}") in row


def test_docs_hold_the_generated_settings_tables():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text()
    start = doc.index("\n", doc.index("<!-- settings:begin")) + 1
    assert doc[start:doc.index("<!-- settings:end -->")] == recipes.markdown()  # regenerate with markdown()


def test_settled_settings_are_real_options_of_their_recipes():
    """fidelity.md item 7: what the public code settles is what the recipes run."""
    amlag = recipes.get("amlag2019-attention")
    assert (amlag.optimizer, amlag.schedule, amlag.lr, amlag.epochs) == ("adam_sgd", "staged", 1e-4, 120)
    assert amlag.schedule_options == dict(adam_epochs=60, sgd_epochs=20, sgd_rates=[1e-3, 1e-4, 1e-5])
    assert amlag.monitor == "val_att_ROC-AUC-macro" and amlag.early_stopping_patience >= amlag.epochs
    assert (amlag.crop_frames, amlag.eval_segments) == (4096, 1)  # the first 4096 frames
    assert amlag.crop_transforms == [dict(name="random_resized_crop", probability=0.33, scale=[0.8, 1.0],
                                          ratio=[1.7, 2.3])]
    mtg = recipes.get("mtg-vggish-baseline")
    assert (mtg.optimizer, mtg.schedule, mtg.monitor, mtg.epochs) == ("adam_sgd", "staged", "val_ROC-AUC-macro", 100)
    for name in ("cpjku2019-faresnet", "cpjku2019-shake-faresnet", "cpjku2019-resnet34", "cpjku2019-crnn"):
        cfg = recipes.get(name)
        assert cfg.standardize == "bands" and cfg.crop_transforms == [dict(name="time_roll", max_shift=50)]
    assert recipes.get("cpjku2019-faresnet").model_options["rho"] == 5  # the scripts' default, not the JSON's 7
    selab = recipes.get("selab2021-coteach-effb0-rexnet")
    assert selab.loss == "bce" and selab.schedule_options == dict(monitor="val_loss")
    assert any(s.what == "loss" and s.source == "paper" and "weighted_focal" in s.why
               for s in recipes.settings("selab2021-coteach-effb0-rexnet"))
    for name in ("hcmus2020-mel-effb0", "hcmus2020-wavenet-mobilenetv2", "hcmus2020-wavenet-effb7"):
        cfg = recipes.get(name)
        assert cfg.monitor == "val_loss" and cfg.crop_transforms[0]["name"] == "random_resized_crop"
    # EfficientNet padding as the code's efficientnet_pytorch from_pretrained: static for 224 (B0) / 600 (B7)
    assert recipes.get("hcmus2020-mel-effb0").model_options["padding"] == 224
    assert recipes.get("hcmus2020-wavenet-effb7").model_options["padding"] == 600


def test_amlag_submission1_runs_its_notebooks_head_and_training():
    """submission1/main.ipynb: MobileNetV2 -> mean pool -> Dropout(0.2) -> Linear; 6590-frame crops, batch 4,
    Adam 1e-3 amsgrad + plateau on the validation loss, 100 epochs, early stop 25, mixup alpha 1."""
    cfg = recipes.get("amlag2019-mobilenetv2")
    assert (cfg.crop_frames, cfg.batch_size, cfg.epochs, cfg.early_stopping_patience) == (6590, 4, 100, 25)
    assert (cfg.optimizer, cfg.lr, cfg.amsgrad, cfg.schedule, cfg.monitor) == ("adam", 1e-3, True, "plateau",
                                                                               "val_loss")
    assert (cfg.mixup_alpha, cfg.mixup_mode, cfg.label_balancing) == (1.0, "targets", False)
    model = models.build(cfg.model, input_shape=(96, None, 1), **dict(cfg.model_options, imagenet=False, alpha=0.35))
    assert model.get_layer("head_dropout").rate == 0.2


def test_wavenet_recipes_use_16_band_data():
    for name in ("hcmus2020-wavenet-mobilenetv2", "hcmus2020-wavenet-effb7"):
        assert recipes.get(name).data == "records/jamendo-wavenet"
        assert recipes.get(name).crop_frames == 937  # 30 s at 31.25 frames/s
        assert recipes.get(name, smoke=True).demo_bands == 16


def test_cpjku_schedule_is_the_papers():
    cfg = recipes.get("cpjku2019-faresnet")
    assert cfg.epochs == 200 and cfg.lr == 1e-4 and cfg.schedule == "cpjku"
    assert cfg.schedule_options == dict(warmup=10, decay_start=70, decay_end=120, final_factor=0.01)
    assert (cfg.swa_start, cfg.swa_every, cfg.mixup_alpha, cfg.mixup_mode) == (121, 3, 0.3, "losses")


def test_flags_override_recipe_settings_only_when_given():
    cfg = config_from_args(parse_args(["--recipe", "cpjku2019-faresnet", "--smoke", "--epochs", "2",
                                       "--model-option", "rho=5"]))
    assert cfg.epochs == 2 and cfg.model_options == {"rho": 5, "base_channels": 8}
    assert (cfg.model, cfg.lr, cfg.schedule, cfg.mixup_alpha) == ("fa_resnet", 1e-4, "cpjku", 0.3)
    full = config_from_args(parse_args(["--recipe", "hcmus2020-mel-effb0", "--lr", "0.01", "--no-export"]))
    assert (full.lr, full.export, full.epochs, full.crop_frames) == (0.01, False, 120, 6950)
    assert full.data == "records/jamendo-mel"  # no demo overrides on a recipe


def test_plain_model_runs_keep_their_defaults():
    cfg = config_from_args(parse_args([]))
    assert cfg.model == "mobilenetv2" and cfg.model_options == {"alpha": 0.35}  # the demo defaults
    with pytest.raises(SystemExit, match="--recipe"):
        config_from_args(parse_args(["--smoke"]))


def test_list_recipes_prints_every_name_score_and_setting_source():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tfmood.train", "--list-recipes"], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    lines = out.splitlines()
    for name in NAMES:
        published = recipes.published(name)
        at = next(i for i, line in enumerate(lines) if line.startswith(name + " "))
        assert f"{published.pr_auc_macro:.4f}" in lines[at]
        assert published.roc_auc_macro is None or f"{published.roc_auc_macro:.4f}" in lines[at]
        shown = lines[at + 1:at + 1 + len(recipes.settings(name))]
        assert shown == [f"    {s.line()}" for s in recipes.settings(name)]
        assert all(line.lstrip().startswith(("[code]", "[paper]", "[both]", "[neither]")) for line in shown)


def test_pretrain_flag_calls_vqvae_pretraining_with_the_given_values(monkeypatch, tmp_path):
    from tfmood.training import vqvae_pretrain

    calls = []
    monkeypatch.setattr(vqvae_pretrain, "pretrain", lambda *a, **kw: calls.append((a, kw)) or {"loss": [0.5]})
    out = str(tmp_path / "vq.keras")
    assert main(["--model", "vqvae", "--pretrain", out, "--data", "somewhere", "--epochs", "3"]) == 0
    assert calls == [(("somewhere", out), {"epochs": 3, "verbose": 2})]
    with pytest.raises(SystemExit, match="--model vqvae"):
        main(["--model", "mobilenetv2", "--pretrain", out])


@pytest.fixture(scope="session")
def tiny_wavenet_records(tmp_path_factory):
    """A tiny 16-band, WaveNet-shaped dataset (the demo generator at 16 bands), converted as `wavenet` features."""
    from tfmood.data import convert, demo

    root = tmp_path_factory.mktemp("tiny-wavenet-source")
    splits = demo.generate(str(root), seed=4, sizes={"train": 64, "validation": 56, "test": 56},
                           frame_range=(40, 120), bands=16)
    first = splits["train"][0]
    assert np.load(first.feature_path(str(root / "features"))).shape[0] == 16
    out = tmp_path_factory.mktemp("tiny-wavenet-records")
    convert.run(splits, convert.Options(features_root=str(root / "features"), out_dir=str(out), kind="wavenet",
                                        bands=16), num_shards=2, workers=1, show_progress=False)
    return str(out)


def test_train_batches_have_static_band_and_crop_sizes(tiny_records):
    """CP-JKU's input BatchNormalization and the attention models' segment split need them when fit() traces."""
    from tfmood.data import pipeline

    ds = pipeline.train_dataset(tiny_records, batch_size=8, crop_frames=32, crops_per_track=1)
    assert ds.element_spec[0].shape.as_list()[1:] == [96, 32, 1]


def test_demo_refuses_unknown_band_counts(tmp_path):
    from tfmood.data import demo

    with pytest.raises(ValueError, match="Received: 40"):
        demo.ensure_demo_records(str(tmp_path), bands=40)


@pytest.mark.parametrize("name", NAMES)
def test_smoke_run_end_to_end(name, tiny_records, tiny_wavenet_records, tmp_path):
    from tfmood.training.trainer import train

    cfg = recipes.get(name, smoke=True)
    # The tiny fixtures stand in for the demo data (same generator, ~10x fewer tracks): seconds, not minutes.
    data = tiny_wavenet_records if cfg.demo_bands == 16 else tiny_records
    cfg = dataclasses.replace(cfg, data=data, out=str(tmp_path), verbose=0)
    summary = train(cfg)
    assert 0 <= summary["validation"]["PR-AUC-macro"] <= 1 and 0 <= summary["validation"]["ROC-AUC-macro"] <= 1
    assert os.path.exists(os.path.join(str(tmp_path), f"{name}-smoke", "best.keras"))
