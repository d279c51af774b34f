"""Differential test: tfmood's `efficientnet_b0` / `efficientnet_b7` (default source "keras",
keras.applications) against efficientnet_pytorch, the library HCMUS 2020 built their EfficientNets with
(systems.md, HCMUS section).

`EfficientNet.from_name("efficientnet-b0")` (nothing downloaded; static "same" padding computed for
224x224 exactly as `from_pretrained` builds it; 600x600 for B7) gets random weights, random BN affines and BN
statistics measured on random images; its weights go into
tfmood's bare ImageNet classifier (`imagenet_classes=1000`, no ImageNet weights). That model's input path is
tfmood's Rescaling(255) followed by keras.applications' Rescaling(1/255) and an un-adapted Normalization
(mean 0, variance 1: checked below), i.e. the identity up to float round-off, so both sides see the same image.
Both run in inference mode; BN eps is 1e-3 on both sides (momentum plays no part at inference).
The reference runs in float64 (the exact function of the float32 weights it shares with the Keras model), so the
difference is tfmood's float32 round-off alone. The bound is relative, 1e-5 x max(1, max |logit| of the
reference): the random deep networks amplify round-off (efficientnet_pytorch in float32 is itself 2e-6..6e-6
relative off its float64 run). Measured (float32 Keras vs float64 reference, relative): B0 64x64 5.0e-6, 64x67
8.9e-6, 65x64 5.2e-6, 65x64 padding="same" vs dynamic 5.5e-6; B7 64x64 7.0e-6 (static 600), padding="same" vs
dynamic 1.0e-5 (bound BOUND_B7 = 2e-5 for that cross-check only: 55 blocks of round-off).

Padding (efficientnet.py's `padding` option): the default is efficientnet_pytorch's static padding for the
library's image size (224 for B0, 600 for B7), which matches `from_pretrained` at every input size, odd band
counts included; `padding="same"` is keras.applications' own TF "same" padding by the input's parity, which
matches efficientnet_pytorch's *dynamic* padding (`image_size=None`) on the frequency axis instead. The two
differ by more than the logits' size, so each test tells them apart.
Skipped without torch / efficientnet_pytorch (`pip install -e ".[test,torch]"`).
"""

import functools

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")
efficientnet_pytorch = pytest.importorskip("efficientnet_pytorch")

from tfmood import models  # noqa: E402
from torch_reference import effnet_pytorch_port, port  # noqa: E402

TOLERANCE = 1e-5
BOUND_B7 = 2 * TOLERANCE


def calibrate(net):
    """Batch-norm statistics measured on random images (train-mode passes, cumulative averages): with purely random
    statistics the deep random network's logits barely depend on its input, and a constant output would pass."""
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    generator = torch.Generator().manual_seed(2)
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn((4, 3, 64, 64), generator=generator))
    return net.eval()


@functools.lru_cache(maxsize=None)
def reference(variant):
    """(the net with static padding as from_pretrained builds it: 224 for "b0", 600 for "b7"; the same weights
    with dynamic padding)."""
    torch.manual_seed(0)
    static = calibrate(port.randomize(efficientnet_pytorch.EfficientNet.from_name(f"efficientnet-{variant}")))
    dynamic = efficientnet_pytorch.EfficientNet.from_name(f"efficientnet-{variant}", image_size=None)
    dynamic.load_state_dict(static.state_dict())
    return static.double(), dynamic.double().eval()  # float64: the exact function of the float32 weights


@pytest.fixture(scope="module")
def references():
    return reference("b0")


def compare(references, bands, frames, variant="b0", **options):
    """max |diff| / max(1, max |logit|) of the ported Keras logits against (static, dynamic) efficientnet_pytorch."""
    static, dynamic = references
    model = models.build(f"efficientnet_{variant}", input_shape=(bands, None, 3), imagenet_classes=1000, **options)
    effnet_pytorch_port.port_classifier(static, model)
    (normalization,) = [layer for layer in effnet_pytorch_port.keras_backbone(model).layers
                        if isinstance(layer, keras.layers.Normalization)]
    assert np.allclose(normalization.mean, 0.0) and np.allclose(normalization.variance, 1.0)
    assert port.keras_trainable_count(model) == port.trainable_count(static)
    x = np.random.default_rng(1).standard_normal((2, 3, bands, frames)).astype("float32")
    with torch.no_grad():
        expected = [net(torch.from_numpy(x).double()).numpy() for net in (static, dynamic)]
    got = np.asarray(model(x.transpose(0, 2, 3, 1), training=False))
    # each difference in units of its reference's max(1, max |logit|)
    static_diff, dynamic_diff = (float(np.abs(e - got).max()) / max(1.0, float(np.abs(e).max())) for e in expected)
    scale = float(np.abs(expected[0]).max())
    print(f"{variant.upper()} {bands}x{frames} {options or 'default'}: efficientnet_pytorch "
          f"{port.trainable_count(static):,} parameters, Keras {port.keras_trainable_count(model):,}; "
          f"max |diff| / max(1, max|logit|) vs static (from_pretrained) {static_diff:.2e}, vs dynamic "
          f"{dynamic_diff:.2e} (static max |logit| {scale:.2f}, sample-to-sample "
          f"{np.abs(expected[0][0] - expected[0][1]).max():.2f})")
    # the two images must give logits further apart than the tolerance, or a constant output would pass
    assert np.abs(expected[0][0] - expected[0][1]).max() > 100 * TOLERANCE
    return static_diff, dynamic_diff


def test_b0_matches_efficientnet_pytorch_at_64x64(references):
    static_diff, _ = compare(references, 64, 64)
    assert static_diff <= TOLERANCE


def test_time_axis_matches_static_padding_at_an_odd_length(references):
    """The free time axis pads as at 224 whatever its length."""
    static_diff, dynamic_diff = compare(references, 64, 67)
    assert static_diff <= TOLERANCE
    assert dynamic_diff > 1e-3  # so the test tells the two paddings apart


def test_odd_band_count_matches_from_pretrained(references):
    """65 bands: efficientnet_pytorch's static 224 padding pads the odd stride-2 inputs (0, 1) / (1, 2), where TF
    "same" pads them symmetrically; the default pads as from_pretrained (tfmood used to match the dynamic padding
    here and be off from_pretrained by more than the logits' size)."""
    static_diff, dynamic_diff = compare(references, 65, 64)
    assert static_diff <= TOLERANCE
    assert dynamic_diff > 1e-3


def test_same_padding_option_matches_dynamic_padding(references):
    """`padding="same"` (keras.applications' own): the odd band count pads symmetrically, as the dynamic padding."""
    static_diff, dynamic_diff = compare(references, 65, 64, padding="same")
    assert dynamic_diff <= TOLERANCE
    assert static_diff > 1e-3


@pytest.mark.slow  # 66M parameters: ~1 min on 2 CPU cores
@pytest.mark.parametrize("options, matches", [({}, "static"), ({"padding": "same"}, "dynamic")])
def test_b7_matches_from_pretrained_static_600(options, matches):
    """efficientnet_pytorch's B7 computes its static padding for 600x600: block4a's stride-2 conv then sees 75 rows
    (odd) and pads (1, 1), where TF "same" at 64 rows (8 there, even) pads (0, 1). The default (static 600) matches
    from_pretrained's B7; `padding="same"` matches the dynamic padding. Bound: BOUND_B7 relative (55 blocks of
    float32 round-off), against a mismatch of ~0.8 between the two paddings."""
    static_diff, dynamic_diff = compare(reference("b7"), 64, 64, variant="b7", **options)
    diff, other = (static_diff, dynamic_diff) if matches == "static" else (dynamic_diff, static_diff)
    assert diff <= BOUND_B7
    assert other > 1e-2
