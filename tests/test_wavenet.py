"""NSynth WaveNet encoder: graph vs a numpy reference, TF1 checkpoint loading, and the extraction CLI."""

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from tfmood.models import wavenet

CHANNELS, LAYERS, STAGES, HOP = 4, 3, 2, 8  # dilations 1, 2, 1; 8 samples per frame
TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _tiny():
    return wavenet.nsynth_encoder(channels=CHANNELS, num_layers=LAYERS, stages=STAGES, hop=HOP)


def _checkpoint_weights(seed=0):
    """{scope: (W [1, k, in, out], biases)} for the tiny encoder, named as magenta's graph names them."""
    rng = np.random.default_rng(seed)
    shapes = {"ae_startconv": (3, 1, CHANNELS), "ae_bottleneck": (1, CHANNELS, 16)}
    for i in range(1, LAYERS + 1):
        shapes[f"ae_dilatedconv_{i}"] = (3, CHANNELS, CHANNELS)
        shapes[f"ae_res_{i}"] = (1, CHANNELS, CHANNELS)
    return {scope: (rng.normal(0, 0.5, (1, *shape)).astype("float32"), rng.normal(0, 0.1, shape[-1]).astype("float32"))
            for scope, shape in shapes.items()}


def _write_tf1_checkpoint(path, weights, ema=None):
    """A TF1 `Saver` checkpoint with `<scope>/W`, `<scope>/biases` (+ `/ExponentialMovingAverage` shadows)."""
    graph = tf.Graph()
    with graph.as_default():
        variables = {}
        for source, suffix in [(weights, "")] + ([(ema, "/ExponentialMovingAverage")] if ema else []):
            for scope, (w, b) in source.items():
                variables[f"{scope}/W{suffix}"] = tf.compat.v1.Variable(w)
                variables[f"{scope}/biases{suffix}"] = tf.compat.v1.Variable(b)
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, str(path))


def _conv(x, w, b, dilation):
    """Zero-padded 'SAME' dilated conv in numpy: x [T, in], w [k, in, out]."""
    k = w.shape[0]
    pad = dilation * (k - 1) // 2
    padded = np.pad(x, ((pad, pad), (0, 0)))
    return sum(padded[j * dilation:j * dilation + len(x)] @ w[j] for j in range(k)) + b


def _reference(audio, weights):
    """magenta's Config.build encoder, written out in numpy."""
    x = audio[: len(audio) // HOP * HOP].astype(np.float64)
    x = np.floor(np.sign(x) * np.log1p(255 * np.abs(x)) / np.log1p(255) * 128) / 128
    w = {scope: (kernel[0], bias) for scope, (kernel, bias) in weights.items()}
    en = _conv(x[:, None], *w["ae_startconv"], 1)
    for i in range(LAYERS):
        d = np.maximum(_conv(np.maximum(en, 0), *w[f"ae_dilatedconv_{i + 1}"], 2 ** (i % STAGES)), 0)
        en = en + _conv(d, *w[f"ae_res_{i + 1}"], 1)
    en = _conv(en, *w["ae_bottleneck"], 1)
    return en.reshape(-1, HOP, 16).mean(axis=1)


def test_checkpoint_loads_and_matches_numpy_reference(tmp_path):
    weights = _checkpoint_weights()
    prefix = _write_tf1_checkpoint(tmp_path / "model.ckpt", weights)
    model = _tiny()
    used = wavenet.load_nsynth_checkpoint(model, prefix)
    assert used["ae_res_2"] == ("ae_res_2/W", "ae_res_2/biases")
    audio = np.random.default_rng(1).uniform(-1, 1, 5 * HOP + 3).astype("float32")  # 3 samples get trimmed
    features = wavenet.encode(model, audio)
    assert features.shape == (16, 5) and features.dtype == np.float32
    np.testing.assert_allclose(features, _reference(audio, weights).T, rtol=1e-4, atol=1e-5)


def test_ema_shadows_are_preferred_when_present(tmp_path):
    raw, ema = _checkpoint_weights(0), _checkpoint_weights(1)
    prefix = _write_tf1_checkpoint(tmp_path / "model.ckpt", raw, ema=ema)
    model = _tiny()
    wavenet.load_nsynth_checkpoint(model, prefix)
    np.testing.assert_array_equal(model.get_layer("ae_startconv").kernel, ema["ae_startconv"][0][0])
    wavenet.load_nsynth_checkpoint(model, prefix, use_ema=False)
    np.testing.assert_array_equal(model.get_layer("ae_startconv").kernel, raw["ae_startconv"][0][0])


def test_missing_variables_are_all_named(tmp_path):
    weights = _checkpoint_weights()
    del weights["ae_res_3"], weights["ae_bottleneck"]
    prefix = _write_tf1_checkpoint(tmp_path / "model.ckpt", weights)
    model = _tiny()
    before = model.get_layer("ae_startconv").get_weights()[0].copy()
    with pytest.raises(KeyError, match="ae_bottleneck/W.*ae_res_3/W") as error:
        wavenet.load_nsynth_checkpoint(model, prefix)
    assert "ae_res_3/biases" in str(error.value)
    np.testing.assert_array_equal(model.get_layer("ae_startconv").get_weights()[0], before)  # nothing half-loaded


def test_full_size_graph_gives_937_frames_for_30_seconds():
    model = wavenet.nsynth_encoder()
    assert model.compute_output_shape((1, 30 * wavenet.SAMPLE_RATE)) == (1, None, 16)
    names = {layer.name for layer in wavenet.checkpoint_layers(model)}
    assert {"ae_startconv", "ae_dilatedconv_30", "ae_res_30", "ae_bottleneck"} <= names and len(names) == 62
    assert model.get_layer("ae_dilatedconv_10").dilation_rate == (512,)
    assert model.get_layer("ae_dilatedconv_11").dilation_rate == (1,)
    assert 30 * wavenet.SAMPLE_RATE // wavenet.HOP == 937


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_wav(path, seconds, seed):
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    soundfile.write(path, rng.uniform(-0.5, 0.5, int(seconds * 16000)).astype("float32"), 16000)


@pytest.mark.parametrize("layout", ["16xT", "1xTx16"])
def test_extract_cli_writes_mtg_layout_that_convert_accepts(tmp_path, layout):
    from tfmood.data.features import FEATURE_KINDS

    _write_wav(tmp_path / "audio/48/948.wav", 1.0, 0)
    _write_wav(tmp_path / "audio/07/1007.wav", 0.5, 1)
    (tmp_path / "audio/07/broken.wav").write_bytes(b"not audio")
    tool = _load_tool("extract_wavenet")
    argv = [str(tmp_path / "audio"), str(tmp_path / "out"), "--random-init", "--channels", "4", "--layers", "2",
            "--segment-seconds", "0.5", "--layout", layout]
    assert tool.main(argv) == 1  # the broken file fails the run, the others are still written
    first = np.load(tmp_path / "out/48/948.npy")
    frames = 8000 // wavenet.HOP  # 0.5 s window at 16 kHz
    assert first.shape == ((16, frames) if layout == "16xT" else (1, frames, 16)) and first.dtype == np.float32
    assert FEATURE_KINDS.get("wavenet")(str(tmp_path / "out/48/948.npy")).shape == (16, frames)
    assert (tmp_path / "out/07/1007.npy").exists() and not (tmp_path / "out/07/broken.npy").exists()
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]


def test_extract_cli_refuses_without_checkpoint(tmp_path, capsys):
    tool = _load_tool("extract_wavenet")
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path), str(tmp_path / "out")])
    assert "--random-init" in capsys.readouterr().err
