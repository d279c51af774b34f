"""Differential test: tfmood's `efficientnet_b0` / `efficientnet_b7` (default source "keras",
keras.applications) against efficientnet_pytorch, the library HCMUS 2020 built their EfficientNets with
(systems.md, HCMUS section).

`EfficientNet.from_name("efficientnet-b0")` (nothing downloaded; static "same" padding computed for
224x224 exactly as `from_pretrained` builds it) gets random weights, random BN affines and BN statistics measured
on random images; its weights go into
tfmood's bare ImageNet classifier (`imagenet_classes=1000`, no ImageNet weights). That model's input path is
tfmood's Rescaling(255) followed by keras.applications' Rescaling(1/255) and an un-adapted Normalization
(mean 0, variance 1: checked below), i.e. the identity up to float round-off, so both sides see the same image.
Both run in inference mode; BN eps is 1e-3 on both sides (momentum plays no part at inference).
The bound is relative, 1e-5 x max(1, max |logit| of the reference): float32 round-off grows with the logits
(torch float32 vs float64 alone differs by 1.8e-5 at max |logit| 8). Measured at 64x64: max |diff| 1.0e-5 at
max |logit| 1.7, i.e. 5.9e-6 relative.

What it shows about padding (see efficientnet.py's docstring): the time axis (free length) always matches the static
224 padding; the frequency axis (fixed at build) matches it only when the bands keep every stride-2 input even
(a multiple of 32: 96 mel bands, 32 tiled WaveNet rows), and otherwise matches efficientnet_pytorch's *dynamic*
padding (`image_size=None`) instead.
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
    """(static-224 net as from_pretrained builds it, the same weights with dynamic padding) for "b0" / "b7"."""
    torch.manual_seed(0)
    static = calibrate(port.randomize(efficientnet_pytorch.EfficientNet.from_name(f"efficientnet-{variant}")))
    dynamic = efficientnet_pytorch.EfficientNet.from_name(f"efficientnet-{variant}", image_size=None)
    dynamic.load_state_dict(static.state_dict())
    return static, dynamic.eval()


@pytest.fixture(scope="module")
def references():
    return reference("b0")


def compare(references, bands, frames, variant="b0"):
    """max |diff| / max(1, max |logit|) of the ported Keras logits against (static, dynamic) efficientnet_pytorch."""
    static, dynamic = references
    model = models.build(f"efficientnet_{variant}", input_shape=(bands, None, 3), imagenet_classes=1000)
    effnet_pytorch_port.port_classifier(static, model)
    (normalization,) = [layer for layer in effnet_pytorch_port.keras_backbone(model).layers
                        if isinstance(layer, keras.layers.Normalization)]
    assert np.allclose(normalization.mean, 0.0) and np.allclose(normalization.variance, 1.0)
    assert port.keras_trainable_count(model) == port.trainable_count(static)
    x = np.random.default_rng(1).standard_normal((2, 3, bands, frames)).astype("float32")
    with torch.no_grad():
        expected = [net(torch.from_numpy(x)).numpy() for net in (static, dynamic)]
    got = np.asarray(model(x.transpose(0, 2, 3, 1), training=False))
    # each difference in units of its reference's max(1, max |logit|)
    static_diff, dynamic_diff = (float(np.abs(e - got).max()) / max(1.0, float(np.abs(e).max())) for e in expected)
    scale = float(np.abs(expected[0]).max())
    print(f"{variant.upper()} {bands}x{frames}: efficientnet_pytorch {port.trainable_count(static):,} parameters, "
          f"Keras "
          f"{port.keras_trainable_count(model):,}; max |diff| / max(1, max|logit|) vs static (from_pretrained) "
          f"{static_diff:.2e}, vs dynamic {dynamic_diff:.2e} (static max |logit| {scale:.2f}, sample-to-sample "
          f"{np.abs(expected[0][0] - expected[0][1]).max():.2f})")
    # the two images must give logits further apart than the tolerance, or a constant output would pass
    assert np.abs(expected[0][0] - expected[0][1]).max() > 100 * TOLERANCE
    return static_diff, dynamic_diff


def test_b0_matches_efficientnet_pytorch_at_64x64(references):
    static_diff, _ = compare(references, 64, 64)
    assert static_diff <= TOLERANCE


def test_time_axis_matches_static_padding_at_an_odd_length(references):
    """The free time axis pads as at 224 whatever its length (the backbone is built at an even width)."""
    static_diff, dynamic_diff = compare(references, 64, 67)
    assert static_diff <= TOLERANCE
    assert dynamic_diff > 1e-3  # so the test tells the two paddings apart


def test_odd_band_count_pads_like_dynamic_not_static(references):
    """65 bands: keras.applications pads the odd stride-2 inputs symmetrically (TF "same"), efficientnet_pytorch's
    static 224 padding does not: the logits differ by more than the logits' own size. Documented in efficientnet.py;
    HCMUS's 96 / 32 rows
    are multiples of 32 and unaffected."""
    static_diff, dynamic_diff = compare(references, 65, 64)
    assert dynamic_diff <= TOLERANCE
    assert static_diff > 1e-3


@pytest.mark.slow  # 66M parameters: ~1 min on 2 CPU cores
def test_b7_pads_like_dynamic_not_static_600():
    """efficientnet_pytorch's B7 computes its static padding for 600x600: block4a's stride-2 conv then sees 75 rows
    (odd) and pads (1, 1); keras.applications at 64 (8 rows there, even) pads (0, 1). So tfmood's B7 does not
    match from_pretrained's B7 even at a multiple of 32; it matches the dynamic padding. Bound 2e-5 relative for
    that match: 55 blocks of float32 round-off (measured 1.1e-5), against a static mismatch of ~0.8."""
    static_diff, dynamic_diff = compare(reference("b7"), 64, 64, variant="b7")
    assert dynamic_diff <= 2 * TOLERANCE
    assert static_diff > 1e-2
