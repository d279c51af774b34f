"""`python -m tfmood.predict` on a tiny exported vggish and synthetic audio, bad files included."""

import json

import numpy as np
import pytest
import soundfile as sf

from tfmood import predict
from tfmood.frontend import SAMPLE_RATE, audio_to_mel
from tfmood.tags import NUM_TAGS, TAGS


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny vggish exported with tfmood.export (thresholds 0.5 for every tag), and the Keras model."""
    import keras

    from tfmood import models
    from tfmood.export import export_model

    keras.utils.set_random_seed(0)
    model = models.build("vggish", channels=(4, 4, 4, 4, 4))
    base = tmp_path_factory.mktemp("saved_models")
    export_model(model, "tiny", base_dir=str(base), thresholds=[0.5] * NUM_TAGS, warmup=False)
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


def test_segment_crops_cover_the_track_evenly():
    mel = np.arange(3 * 100, dtype=np.float32).reshape(3, 100)
    crops = predict.segment_crops(mel, crop_frames=40, segments=4)
    assert crops.shape == (4, 3, 40)
    assert [int(c[0, 0]) for c in crops] == [0, 20, 40, 60]  # starts round(linspace(0, 60, 4))
    short = predict.segment_crops(mel[:, :30], crop_frames=70, segments=4)
    assert short.shape == (1, 3, 70)
    np.testing.assert_array_equal(short[0, :, 30:60], mel[:, :30])  # repeated, not zero padded


def test_version_dir_picks_highest_or_requested(tmp_path):
    for version in (1, 3, 12):
        (tmp_path / str(version)).mkdir()
    assert predict.version_dir(tmp_path).name == "12"
    assert predict.version_dir(tmp_path, 3).name == "3"
    with pytest.raises(FileNotFoundError, match="Available: \\[1, 3, 12\\]"):
        predict.version_dir(tmp_path, 2)


def test_cli_tags_good_files_and_reports_bad_ones(exported, audio_dir, capsys):
    model_dir, model = exported
    status = predict.main([str(audio_dir), "--model", str(model_dir), "--json", "--segments", "3",
                           "--crop-frames", "200"])
    out, err = capsys.readouterr()
    assert status == 1
    assert "corrupt.mp3" in err and "empty.wav" in err and "2 of 4 files" in err
    records = {r["file"]: r for r in map(json.loads, out.splitlines())}
    assert set(records) == {str(audio_dir / "long.wav"), str(audio_dir / "sub" / "short.flac")}

    path = str(audio_dir / "long.wav")
    scores = np.array([records[path]["scores"][t] for t in TAGS])
    crops = predict.segment_crops(audio_to_mel(path), crop_frames=200, segments=3)
    expected = np.asarray(model(crops[..., None], training=False)).mean(axis=0)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert records[path]["decisions"] == [t for t, s in zip(TAGS, expected) if s > 0.5]


def test_cli_text_output_shows_top_tags(exported, audio_dir, capsys):
    model_dir, _ = exported
    status = predict.main([str(audio_dir / "long.wav"), "--model", str(model_dir), "--top", "3"])
    out, _ = capsys.readouterr()
    assert status == 0
    path, tags = out.strip().split("\t")
    pairs = tags.split("  ")
    scores = [float(p.split()[1]) for p in pairs]
    assert path.endswith("long.wav") and len(pairs) == 3 and scores == sorted(scores, reverse=True)
    assert all(p.split()[0] in TAGS for p in pairs)


def test_cli_rejects_bad_arguments(exported, audio_dir):
    model_dir, _ = exported
    with pytest.raises(SystemExit):
        predict.main([str(audio_dir / "long.wav"), "--model", str(model_dir), "--top", "0"])
    with pytest.raises(FileNotFoundError, match="No SavedModel"):
        predict.main([str(audio_dir / "long.wav"), "--model", str(audio_dir)])
