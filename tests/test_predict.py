"""`python -m tfmood.predict` on a tiny exported vggish and synthetic audio, bad files included."""

import importlib
import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tfmood import predict
from tfmood.frontend import SAMPLE_RATE, audio_to_mel
from tfmood.protocol import Protocol
from tfmood.tags import NUM_TAGS, TAGS

PROTOCOL = Protocol(crop_frames=200, segments=3)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny vggish exported with tfmood.export (thresholds 0.5 for every tag), and the Keras model."""
    import keras

    from tfmood import models
    from tfmood.export import export_model

    keras.utils.set_random_seed(0)
    model = models.build("vggish", channels=(4, 4, 4, 4, 4))
    base = tmp_path_factory.mktemp("saved_models")
    export_model(model, "tiny", base_dir=str(base), thresholds=[0.5] * NUM_TAGS, protocol=PROTOCOL, warmup=False)
    return base / "tiny", model


@pytest.fixture()
def audio_dir(tmp_path):
    rng = np.random.default_rng(0)
    sf.write(str(tmp_path / "long.wav"), 0.1 * rng.standard_normal(SAMPLE_RATE * 25), SAMPLE_RATE)
    (tmp_path / "sub").mkdir()
    sf.write(str(tmp_path / "sub" / "short.flac"), 0.1 * rng.standard_normal(SAMPLE_RATE), SAMPLE_RATE)
    (tmp_path / "corrupt.mp3").write_bytes(b"\xff\xfb garbage " * 50)
    (tmp_path / "empty.wav").write_bytes(b"")
    return tmp_path


def protocol_scores(model, mel, protocol):
    """The protocol in plain numpy (tile a short clip to one crop; round(linspace) starts), Keras model."""
    crop, frames = protocol.crop_frames, mel.shape[1]
    if frames < crop:  # tiled to exactly one crop
        mel = np.tile(mel, (1, -(-crop // frames)))[:, :crop]
    starts = np.round(np.linspace(0, mel.shape[1] - crop, protocol.segments)).astype(int)
    crops = np.stack([mel[:, s:s + crop] for s in starts])
    return np.asarray(model(crops[..., None], training=False)).mean(axis=0)


def test_version_dir_picks_highest_or_requested(tmp_path):
    for version in (1, 3, 12):
        (tmp_path / str(version)).mkdir()
    assert predict.version_dir(tmp_path).name == "12"
    assert predict.version_dir(tmp_path, 3).name == "3"
    with pytest.raises(FileNotFoundError, match="Available: \\[1, 3, 12\\]"):
        predict.version_dir(tmp_path, 2)


def test_cli_tags_good_files_with_the_models_protocol_and_reports_bad_ones(exported, audio_dir, capsys):
    model_dir, model = exported
    status = predict.main([str(audio_dir), "--model", str(model_dir), "--json"])
    out, err = capsys.readouterr()
    assert status == 1
    assert "corrupt.mp3" in err and "empty.wav" in err and "2 of 4 files" in err
    records = {r["file"]: r for r in map(json.loads, out.splitlines())}
    assert set(records) == {str(audio_dir / "long.wav"), str(audio_dir / "sub" / "short.flac")}

    for name in ("long.wav", "sub/short.flac"):  # one clip longer than a crop, one shorter
        path = str(audio_dir / name)
        scores = np.array([records[path]["scores"][t] for t in TAGS])
        expected = protocol_scores(model, audio_to_mel(path), PROTOCOL)
        # the export's TF frontend (float32) vs numpy (float64): ~1e-6 on the scores
        np.testing.assert_allclose(scores, expected, atol=1e-4)
        assert records[path]["decisions"] == [t for t, s in zip(TAGS, scores) if s > 0.5]


def test_cli_text_output_shows_top_tags_in_a_subprocess(exported, audio_dir):
    model_dir, _ = exported
    run = subprocess.run([sys.executable, "-m", "tfmood.predict", str(audio_dir / "long.wav"), "--model",
                          str(model_dir), "--top", "3"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    path, tags = run.stdout.strip().split("\t")
    pairs = tags.split("  ")
    scores = [float(p.split()[1]) for p in pairs]
    assert path.endswith("long.wav") and len(pairs) == 3 and scores == sorted(scores, reverse=True)
    assert all(p.split()[0] in TAGS for p in pairs)


def test_cli_rejects_bad_arguments_and_models(exported, audio_dir, tmp_path, capsys):
    model_dir, _ = exported
    with pytest.raises(SystemExit):
        predict.main([str(audio_dir / "long.wav"), "--model", str(model_dir), "--top", "0"])
    assert predict.main([str(audio_dir / "long.wav"), "--model", str(audio_dir)]) == 2
    assert "No SavedModel" in capsys.readouterr().err
    # An export from before the protocol was part of the model: say so, don't silently score differently.
    old = tmp_path / "old"
    shutil.copytree(model_dir / "1", old)
    info = json.loads((old / "assets" / "tfmood.json").read_text())
    del info["protocol"]
    (old / "assets" / "tfmood.json").write_text(json.dumps(info))
    assert predict.main([str(audio_dir / "long.wav"), "--model", str(old)]) == 2
    assert "re-export it" in capsys.readouterr().err


# What one `python -m tfmood.predict` run may import: TensorFlow, not the packages it would drag in for
# nothing (Keras 3 and scikit-learn via TensorFlow's eager `keras.src.optimizers` import, librosa via decoding).
HEAVY = ("keras", "sklearn", "librosa")
MODULES_AFTER_MAIN = """
import gc, sys
from tfmood import predict
status = predict.main(sys.argv[1:])
print("STATUS", status, "GC", gc.isenabled())
print("HEAVY", *sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY)))
"""


def test_predict_imports_neither_keras_nor_librosa_and_restores_gc(exported, audio_dir):
    model_dir, _ = exported
    script = f"HEAVY = {HEAVY!r}\n" + MODULES_AFTER_MAIN
    run = subprocess.run([sys.executable, "-c", script, str(audio_dir / "long.wav"), "--model", str(model_dir)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(str(audio_dir / "long.wav") + "\t")  # the result came out
    assert lines[1] == "STATUS 0 GC True"
    assert lines[2] == "HEAVY", f"imported by predict: {lines[2].split()[1:]}"


def test_keras_refused_only_inside_the_block_and_only_for_its_thread(monkeypatch):
    import threading

    monkeypatch.delitem(sys.modules, "keras", raising=False)
    seen = {}
    with predict.KerasRefused():
        spec = importlib.util.find_spec("keras")  # what TensorFlow does to locate keras' folder: still works
        assert spec is not None and spec.origin.endswith("__init__.py")
        with pytest.raises(ImportError, match="without keras"):
            importlib.import_module("keras")
        assert "keras" not in sys.modules
        other = threading.Thread(target=lambda: seen.update(loader=importlib.util.find_spec("keras").loader))
        other.start()
        other.join()
    assert not isinstance(seen["loader"], predict._RefusingLoader)  # other threads import keras normally
    assert not any(isinstance(f, predict.KerasRefused) for f in sys.meta_path)
    assert not isinstance(importlib.util.find_spec("keras").loader, predict._RefusingLoader)
