"""Differential tests: the zoo's timm rebuilds (ReXNet-100, MixNet-S, timm's EfficientNet-B0) against timm itself.

timm builds each network with random weights and random batch-norm statistics (pretrained=False: nothing is
downloaded); `tfmood.models.timm_port` copies them into the Keras model; both run in inference mode on the same
random input. Two comparisons per network: timm's bare ImageNet classifier (NCHW vs NHWC RGB), and SELAB-HCMUS's
whole tagger (bw2col stem -> timm network with 56 outputs -> sigmoid, written here in PyTorch from the seed's
description, systems.md C2) against the tfmood tagger on `[batch, bands, frames, 1]` mel input.
Skipped without torch / timm (`pip install -e ".[test,torch]"`); the full set: `pytest -m "slow or not slow" FILE`.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfmood.models import timm_port

timm_port.hide_triton()  # TensorFlow is loaded: importing timm would otherwise crash (see hide_triton)
timm = pytest.importorskip("timm")
import torch  # noqa: E402

from tfmood import models  # noqa: E402
from torch_reference import port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["rexnet_100", "mixnet_s", "efficientnet_b0"]
TOLERANCE = 1e-5


def randomise(net, seed=0):
    """Random weights *and* batch-norm statistics / affines, so an unported or misplaced tensor shows."""
    return port.randomize_norms(net, seed)


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name", NAMES)
def test_imagenet_classifier_matches_timm(name):
    net = randomise(timm_port.timm_model(name))
    ported = timm_port.port(net, name)
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 80)).astype("float32")
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    got = np.asarray(ported(x.transpose(0, 2, 3, 1), training=False))
    difference = np.abs(expected - got).max()
    print(f"{name}: timm {sum(p.numel() for p in net.parameters()):,} parameters, Keras {trainable(ported):,}; "
          f"max |diff| {difference:.2e} (logit std {expected.std():.2f})")
    assert expected.std() > 0.1, "logits too flat for the comparison to mean anything"
    assert trainable(ported) == sum(p.numel() for p in net.parameters())
    assert difference <= TOLERANCE


class SelabTagger(torch.nn.Module):
    """SELAB-HCMUS's model (systems.md C2): bw2col -> timm.create_model(name, num_classes=56) -> sigmoid.

    One input BN as tfmood's bw2col (the seed stacks two, which equal one affine map at inference), with
    Keras's BatchNormalization epsilon 1e-3 that tfmood's stem uses (PyTorch's default is 1e-5)."""

    def __init__(self, name):
        super().__init__()
        self.stem_bn = torch.nn.BatchNorm2d(1, eps=1e-3)
        self.stem_conv1 = torch.nn.Conv2d(1, 10, 1)
        self.stem_conv2 = torch.nn.Conv2d(10, 3, 1)
        self.net = timm.create_model(name, num_classes=56)

    def forward(self, mel):
        x = torch.relu(self.stem_conv2(torch.relu(self.stem_conv1(self.stem_bn(mel)))))
        return torch.sigmoid(self.net(x))


# Full-size networks take ~30 s each on the shared 2-core CPU: SELAB's EfficientNet-B0 runs by default.
SLOW = pytest.mark.slow


@pytest.mark.parametrize("name", [pytest.param("rexnet_100", marks=SLOW), pytest.param("mixnet_s", marks=SLOW),
                                  "efficientnet_b0"])
def test_selab_tagger_matches_timm_behind_the_stem(name):
    reference = randomise(SelabTagger(name), seed=2)
    port = timm_port.PORTS.get(name)
    tagger = models.build(port.model, input_shape=(32, None, 1), num_tags=56, **port.options)
    names = {f"net.{module}": "head_scores" if layer == timm_port.CLASSIFIER else layer
             for module, layer in port.layer_names(reference.net).items()}
    names.update(stem_bn="stem_bn", stem_conv1="stem_conv1", stem_conv2="stem_conv2")
    timm_port.copy_weights(reference, tagger, names)
    mel = np.random.default_rng(3).standard_normal((2, 32, 72, 1)).astype("float32")  # [batch, bands, frames, 1]
    with torch.no_grad():
        expected = reference(torch.from_numpy(mel.transpose(0, 3, 1, 2))).numpy()
    got = np.asarray(tagger(mel, training=False))
    difference = np.abs(expected - got).max()
    print(f"{name} tagger: max |diff| {difference:.2e} (score std {expected.std():.3f})")
    assert expected.std() > 0.01
    assert difference <= TOLERANCE


def run_tool(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "port_timm.py"), *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@SLOW
def test_port_tool_writes_weights_the_selab_tagger_starts_from(tmp_path):
    """The CLI as a user runs it, on a local checkpoint of random timm weights; the tagger's `weights=` option."""
    net = randomise(timm_port.timm_model("efficientnet_b0"), seed=4)
    checkpoint, out = tmp_path / "effb0.pth", tmp_path / "ported" / "effb0.keras"
    torch.save({"state_dict": net.state_dict()}, checkpoint)  # timm's training-checkpoint layout
    done = run_tool("efficientnet_b0", "--checkpoint", str(checkpoint), "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "max |timm - Keras| logit difference" in done.stdout
    # The file is timm's classifier: equal logits after a reload.
    import keras

    reloaded = keras.models.load_model(out, compile=False)
    assert timm_port.max_difference(net, reloaded) <= TOLERANCE
    # A SELAB-style tagger starts from it: every backbone layer carries the timm weights, stem and head are fresh.
    tagger = models.build("efficientnet_b0", input_shape=(96, None, 1), source="timm", weights=str(out))
    for layer in reloaded.layers:
        if layer.weights and layer.name != timm_port.CLASSIFIER:
            for mine, theirs in zip(tagger.get_layer(layer.name).get_weights(), layer.get_weights()):
                np.testing.assert_array_equal(mine, theirs)
    assert tagger.get_layer("head_scores").get_weights()[0].shape == (1280, 56)


def test_port_tool_errors_are_sentences(tmp_path):
    unknown = run_tool("resnet50", "--pretrained", "--out", str(tmp_path / "x.keras"))
    assert unknown.returncode == 2 and "invalid choice: 'resnet50'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    missing = run_tool("mixnet_s", "--checkpoint", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "x.keras"))
    assert missing.returncode == 2 and "nope.pth': no such file" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert not (tmp_path / "x.keras").exists()


def test_checkpoint_of_another_network_is_refused(tmp_path):
    checkpoint = tmp_path / "rexnet.pth"
    torch.save(timm_port.timm_model("rexnet_100").state_dict(), checkpoint)
    with pytest.raises(ValueError, match="does not fit timm's mixnet_s"):
        timm_port.timm_model("mixnet_s", checkpoint=str(checkpoint))


def test_tool_names_are_the_registry():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import port_timm
    finally:
        sys.path.pop(0)
    assert sorted(port_timm.NAMES) == timm_port.PORTS.names()
