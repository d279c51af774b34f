"""SavedModel export: signatures run the way TF Serving runs them (TF1 session on the signature's tensor names)."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmood import export
from tfmood.protocol import Protocol
from tfmood.serving.config import read_models_config, write_models_config
from tfmood.tags import TAGS

BANDS = 96


def tiny_model(bands=BANDS, kernel=(3, 3), padding="same", dtype=None):
    inputs = keras.Input(shape=(bands, None, 1), name="mel")
    x = keras.layers.Conv2D(4, kernel, padding=padding, activation="relu", dtype=dtype)(inputs)
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype)(x)
    return keras.Model(inputs, keras.layers.Dense(len(TAGS), activation="sigmoid", dtype=dtype)(x))


class Session:
    """A SavedModel loaded like TF Serving's TF1 runtime: run signatures by their tensor names."""

    def __init__(self, path):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            self.meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], path)

    def run(self, signature, **feeds):
        definition = self.meta_graph.signature_def[signature]
        fetches = {key: info.name for key, info in definition.outputs.items()}
        return self.session.run(fetches, {definition.inputs[key].name: value for key, value in feeds.items()})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = tiny_model()
    base = tmp_path_factory.mktemp("saved_models")
    thresholds = {tag: 0.1 + i / 100 for i, tag in enumerate(TAGS)}
    path = export.export_model(model, "tagger", base, thresholds=thresholds)
    session = Session(path)
    yield model, path, session
    session.session.close()


CROP, SEGMENTS = Protocol().crop_frames, Protocol().segments


def numpy_protocol_crops(mel, crop, segments):
    """The scoring protocol stated in plain numpy: tile a short clip up to one crop, then `segments` crops
    starting at round(linspace(0, frames - crop, segments))."""
    frames = mel.shape[-1]
    if frames < crop:  # tiled to exactly one crop
        mel = np.tile(mel, (1,) * (mel.ndim - 1) + (-(-crop // frames),))[..., :crop]
    starts = np.round(np.linspace(0, mel.shape[-1] - crop, segments)).astype(int)
    return np.stack([mel[..., s:s + crop] for s in starts], axis=-3)


def numpy_protocol_scores(model, mel, crop, segments):
    crops = numpy_protocol_crops(mel, crop, segments)                      # [batch, segments, bands, crop]
    flat = crops.reshape((-1,) + crops.shape[-2:])
    return model(flat[..., None]).numpy().reshape(crops.shape[0], segments, -1).mean(axis=1)


@pytest.mark.parametrize("frames", [1, 37, CROP, CROP + 333])
def test_mel_signatures_apply_the_protocol_and_raw_scores_the_whole_input(exported, frames):
    model, _, session = exported
    # a loudness ramp along time: crops of a long clip differ from its whole
    ramp = np.linspace(-3, 3, frames, dtype=np.float32)
    mel = (np.random.default_rng(frames).normal(size=(2, BANDS, frames)) + ramp).astype(np.float32)
    raw = session.run("serve_raw", mel=mel)
    np.testing.assert_allclose(raw["scores"], model(mel[..., None]).numpy(), atol=1e-5)
    out = session.run("serving_default", mel=mel)
    np.testing.assert_allclose(out["scores"], numpy_protocol_scores(model, mel, CROP, SEGMENTS), atol=1e-5)
    assert out["scores"].dtype == np.float32 and out["scores"].shape == (2, len(TAGS))
    assert out["tags"].shape == (2, len(TAGS))
    assert [t.decode() for t in out["tags"][1]] == list(TAGS)
    if frames > CROP:  # a long clip: the protocol's answer is not the whole input's
        assert np.abs(out["scores"] - raw["scores"]).max() > 1e-4


@pytest.mark.parametrize("samples", [3000, (CROP + 60) * 256])
def test_waveform_signature_matches_numpy_frontend(exported, samples):
    pytest.importorskip("tfmood.frontend")
    from tfmood.frontend import log_mel_numpy

    model, _, session = exported
    waveform = np.random.default_rng(samples).uniform(-0.5, 0.5, size=(2, samples)).astype(np.float32)
    out = session.run("serve_waveform", waveform=waveform)
    mel = np.stack([log_mel_numpy(w) for w in waveform])
    # log-mel in float32 (TF) vs float64 (numpy) differs by ~1e-4 dB, which moves scores by ~1e-6
    np.testing.assert_allclose(out["scores"], numpy_protocol_scores(model, mel, CROP, SEGMENTS), atol=1e-4)
    assert out["scores"].shape == (2, len(TAGS)) and out["tags"].shape == (2, len(TAGS))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one sample"):
        session.run("serve_waveform", waveform=np.zeros((1, 0), np.float32))


def test_signature_defs_and_assets(exported):
    _, path, session = exported
    signatures = session.meta_graph.signature_def
    mel = signatures["serving_default"]
    assert mel.method_name == "tensorflow/serving/predict"
    assert [d.size for d in mel.inputs["mel"].tensor_shape.dim] == [-1, BANDS, -1]
    assert mel.outputs["scores"].dtype == tf.float32.as_datatype_enum
    assert mel.outputs["tags"].dtype == tf.string.as_datatype_enum
    assert [d.size for d in signatures["serve_waveform"].inputs["waveform"].tensor_shape.dim] == [-1, -1]
    assets = os.path.join(path, "assets")
    assert open(os.path.join(assets, "tags.txt")).read().split("\n")[:-1] == list(TAGS)
    rows = [line.split("\t") for line in open(os.path.join(assets, "thresholds.tsv")).read().splitlines()]
    assert [r[0] for r in rows] == list(TAGS) and float(rows[2][1]) == pytest.approx(0.12)
    info = json.load(open(os.path.join(assets, "tfmood.json")))
    assert info["model"] == "tagger" and info["bands"] == BANDS
    assert info["protocol"] == {"crop_frames": CROP, "segments": SEGMENTS, "short_clips": "tile"}
    assert info["signatures"] == ["serving_default", "serve_raw", "serve_waveform"]
    assert info["thresholds_file"] == "thresholds.tsv"


def test_warmup_records_are_prediction_logs(exported):
    prediction_log_pb2 = pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")
    _, path, _ = exported
    records = list(tf.data.TFRecordDataset(os.path.join(path, "assets.extra", "tf_serving_warmup_requests")))
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    requests = {log.predict_log.request.model_spec.signature_name: log.predict_log.request for log in logs}
    assert set(requests) == {"serving_default", "serve_raw", "serve_waveform"}
    mel = tf.make_ndarray(requests["serving_default"].inputs["mel"])
    assert mel.shape == (1, BANDS, CROP) and requests["serving_default"].model_spec.name == "tagger"


def test_short_inputs_are_tiled_to_the_model_minimum_and_versions_are_atomic(tmp_path):
    model = tiny_model(bands=8, kernel=(1, 5), padding="valid")  # needs >= 5 frames
    assert export.probe_min_frames(model, 8) == 5
    first = export.export_model(model, "short", tmp_path, warmup=False)
    second = export.export_model(model, "short", tmp_path, warmup=False)
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    assert sorted(os.listdir(tmp_path / "short")) == ["1", "2"]  # no .tmp-* left behind
    with pytest.raises(FileExistsError, match="Version 2"):
        export.export_model(model, "short", tmp_path, version=2, warmup=False)
    assert sorted(os.listdir(tmp_path / "short")) == ["1", "2"]

    mel = np.random.default_rng(1).normal(size=(1, 8, 2)).astype(np.float32)
    out = Session(second).run("serve_raw", mel=mel)
    tiled = np.tile(mel, (1, 1, 3))[:, :, :5]
    np.testing.assert_allclose(out["scores"], model(tiled[..., None]).numpy(), atol=1e-5)
    assert "serve_waveform" not in Session(second).meta_graph.signature_def  # 8 bands: no waveform frontend


def test_mixed_precision_outputs_are_float32(tmp_path):
    model = tiny_model(bands=8, dtype="mixed_float16")
    assert model.output.dtype == "float16"
    path = export.export_model(model, "mp", tmp_path, warmup=False)
    out = Session(path).run("serving_default", mel=np.ones((1, 8, 3), np.float32))
    assert out["scores"].dtype == np.float32


def test_export_rejects_bad_arguments(tmp_path):
    model = tiny_model(bands=8)
    with pytest.raises(ValueError, match="Received 'a/b'"):
        export.export_model(model, "a/b", tmp_path)
    with pytest.raises(ValueError, match="57 tags"):
        export.export_model(model, "m", tmp_path, tags=TAGS + ("extra",))
    with pytest.raises(ValueError, match="Expected 56 thresholds"):
        export.export_model(model, "m", tmp_path, thresholds=[0.5] * 3)
    with pytest.raises(ValueError, match="`segments` must be an integer >= 1"):
        export.export_model(model, "m", tmp_path, segments=0)
    valid = tiny_model(bands=8, kernel=(1, 5), padding="valid")
    with pytest.raises(ValueError, match="at least 5 frames.*crops have 4"):
        export.export_model(valid, "m", tmp_path, crop_frames=4, warmup=False)


def test_threshold_vector_sources(tmp_path):
    tsv = tmp_path / "thr.tsv"
    tsv.write_text("tag\tthreshold\n" + "".join(f"mood/theme---{t}\t{i / 100}\n" for i, t in enumerate(TAGS)))
    from_file = export.threshold_vector(str(tsv))
    assert from_file[3] == pytest.approx(0.03)
    np.testing.assert_allclose(export.threshold_vector(dict(zip(TAGS, from_file))), from_file)
    with pytest.raises(ValueError, match="missing 1 tags"):
        export.threshold_vector({t: 0.5 for t in TAGS[1:]})


def test_models_config_parses_as_model_server_config(tmp_path):
    path = write_models_config(tmp_path, ["tagger", "other"], model_root="/models")
    text = open(path).read()
    assert "base_path: '/models/tagger'" in text and "name: 'other'" in text
    pytest.importorskip("tensorflow_serving.config.model_server_config_pb2")
    configs = read_models_config(path)
    assert [(c.name, c.base_path, c.policy) for c in configs] == [
        ("tagger", "/models/tagger", "latest"), ("other", "/models/other", "latest")]
    local = read_models_config(write_models_config(tmp_path, "tagger"))
    assert local[0].base_path == str((tmp_path / "tagger").resolve())


def test_cli_exports_a_saved_keras_model_with_its_runs_protocol(tmp_path):
    model_path = tmp_path / "best.keras"
    tiny_model(bands=8).save(model_path)
    # the run's summary.json (tfmood.training.trainer) records the protocol its validation used
    (tmp_path / "summary.json").write_text(json.dumps({"protocol": {"crop_frames": 48, "segments": 5}}))
    path = export.main(["--model", str(model_path), "--name", "cli", "--out", str(tmp_path / "out"),
                        "--version", "4", "--models-config", "--model-root", "/models", "--segments", "3"])
    assert path == str(tmp_path / "out" / "cli" / "4")
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    info = json.load(open(os.path.join(path, "assets", "tfmood.json")))
    assert info["protocol"] == {"crop_frames": 48, "segments": 3, "short_clips": "tile"}  # flag wins
    assert "base_path: '/models/cli'" in (tmp_path / "out" / "models.config").read_text()
