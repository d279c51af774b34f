"""MTG's published baseline weights: the torch-free reader, and the Keras port against the PyTorch original."""

import collections
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from tfmood import mtg_baseline
from tfmood.mtg_baseline import load_mtg_vggish, read_torch_state_dict

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHTS = SHARED / "jamendo" / "baseline" / "best_model.pth"


def _weights():
    if not WEIGHTS.is_file():
        pytest.skip(f"MTG baseline weights not found at {WEIGHTS}")
    return WEIGHTS


def _torch_cnn(torch, num_tags):
    """MTG's `CNN` (scripts/baseline/model.py) rewritten from systems.md F1, the reference for the port."""
    nn = torch.nn

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn_init = nn.BatchNorm2d(1)
            widths = [1, 64, 128, 128, 128, 64]
            for i, pool in enumerate([(2, 4), (2, 4), (2, 4), (3, 5), (4, 4)], start=1):
                setattr(self, f"conv_{i}", nn.Conv2d(widths[i - 1], widths[i], 3, padding=1))
                setattr(self, f"bn_{i}", nn.BatchNorm2d(widths[i]))
                setattr(self, f"mp_{i}", nn.MaxPool2d(pool))
            self.dense = nn.Linear(64, num_tags)

        def forward(self, x):
            x = self.bn_init(x.unsqueeze(1))
            for i in range(1, 6):
                block = [getattr(self, f"{n}_{i}") for n in ("conv", "bn", "mp")]
                x = block[2](nn.functional.elu(block[1](block[0](x))))
            return torch.sigmoid(self.dense(nn.functional.dropout(x.flatten(1), 0.5, self.training)))

    return CNN()


def test_reader_matches_torch_load_on_mtg_file():
    torch = pytest.importorskip("torch")
    ours = read_torch_state_dict(_weights())
    theirs = torch.load(_weights(), map_location="cpu", weights_only=True)
    assert list(ours) == list(theirs)
    for key, tensor in theirs.items():
        assert ours[key].dtype == tensor.numpy().dtype and ours[key].shape == tuple(tensor.shape), key
        np.testing.assert_array_equal(ours[key], tensor.numpy(), err_msg=key)


@pytest.mark.parametrize("zip_format", [True, False])
def test_reader_handles_views_and_both_formats(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    state = collections.OrderedDict(
        transposed=torch.randn(3, 4).t(), sliced=torch.arange(10)[2:7], scalar=torch.tensor(3),
        half=torch.ones(2, dtype=torch.float16))
    path = tmp_path / "state.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    ours = read_torch_state_dict(path)
    for key, tensor in state.items():
        np.testing.assert_array_equal(ours[key], tensor.numpy(), err_msg=key)


def test_reader_refuses_arbitrary_globals(tmp_path):
    """A pickle that would call os.system must be rejected before anything runs."""
    class Exploit:
        def __reduce__(self):
            import os
            return os.system, ("echo pwned",)

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for header in (mtg_baseline.LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump(collections.OrderedDict(x=Exploit()), f, protocol=2)
    with pytest.raises(mtg_baseline.CheckpointError, match="refusing to load (posix|os).system"):
        read_torch_state_dict(path)


def test_keras_port_matches_pytorch_original():
    torch = pytest.importorskip("torch")
    state = torch.load(_weights(), map_location="cpu", weights_only=True)
    reference = _torch_cnn(torch, num_tags=state["dense.weight"].shape[0])
    reference.load_state_dict(state, strict=True)
    reference.eval()
    model = load_mtg_vggish(_weights())

    # MTG's mel values are 20*log10 power (about -100..+40); use that range so BN/ELU see realistic inputs.
    x = (np.random.default_rng(0).standard_normal((2, 96, 1366)) * 20 - 40).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    received = np.asarray(model(x[..., None], training=False))
    assert received.shape == expected.shape == (2, 56)
    np.testing.assert_allclose(received, expected, atol=1e-4, rtol=0)


def test_without_torch_the_restricted_reader_is_used(monkeypatch):
    ours = read_torch_state_dict(_weights())
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    state = mtg_baseline.load_state_dict(_weights())
    assert list(state) == list(ours) and all(np.array_equal(state[k], ours[k]) for k in ours)
    model = load_mtg_vggish(_weights())
    np.testing.assert_array_equal(model.get_layer("dense").get_weights()[0], ours["dense.weight"].T)


def test_port_rejects_foreign_state_dict():
    state = read_torch_state_dict(_weights())
    state["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="extra.weight"):
        mtg_baseline.keras_weights(state)


@pytest.mark.slow
def test_import_tool_exports_servable_model(tmp_path):
    """tools/import_mtg_baseline.py end to end: the SavedModel scores like the Keras port, thresholds shipped."""
    import importlib.util

    import tensorflow as tf

    thresholds = SHARED / "jamendo" / "results" / "baseline_vggish_thresholds.txt"
    tool = Path(__file__).resolve().parents[1] / "tools" / "import_mtg_baseline.py"
    spec = importlib.util.spec_from_file_location("import_mtg_baseline", tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = module.main([str(_weights()), "--name", "mtg-vggish", "--out", str(tmp_path),
                        "--thresholds", str(thresholds)])

    x = (np.random.default_rng(1).standard_normal((2, 96, 1366)) * 20 - 40).astype(np.float32)
    signatures = tf.saved_model.load(path).signatures
    # The whole-input score is the Keras port's: `serve_raw` where the export has the crop protocol's signatures.
    whole = signatures["serve_raw"] if "serve_raw" in signatures else signatures["serving_default"]
    served = whole(mel=tf.constant(x))["scores"].numpy()
    np.testing.assert_allclose(served, np.asarray(load_mtg_vggish(_weights())(x[..., None])), atol=1e-5)
    shipped = [float(line.split("\t")[1]) for line in (Path(path) / "assets" / "thresholds.tsv").read_text().split("\n")
               if line]
    mtg = [float(line.split("\t")[1]) for line in thresholds.read_text().split("\n") if line.strip()]
    np.testing.assert_allclose(shipped, mtg, rtol=1e-5)
