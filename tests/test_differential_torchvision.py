"""Differential tests: tfmood's `mobilenetv2` with `source="torchvision"` against torchvision's mobilenet_v2.

torchvision builds the network with random weights and random batch-norm statistics (weights=None: nothing is
downloaded); `timm_port.copy_weights` copies them into the Keras model by the module -> layer table of
tests/torch_reference/torchvision_mobilenetv2.py (every tensor must land, every Keras layer must be set, BN epsilons
must agree); both run in inference mode on the same random input. Comparisons: torchvision's ImageNet classifier
(NCHW vs NHWC RGB, two widths), AMLAG 2019 submission 1's / HCMUS 2020's tagger (bw2col -> features -> mean pool ->
dropout -> linear -> sigmoid, written here in PyTorch from systems.md B/D3), and the segment CNN inside
`attention_mobilenetv2`; plus the model harness on the torchvision source. Tolerance: 1e-5 absolute on logits (std
~0.3) and on sigmoid scores; seen: <= 6e-7.
Skipped without torch / torchvision (`pip install -e ".[test,torch]"`).
"""

import numpy as np
import pytest

from tfmood.models import timm_port

timm_port.hide_triton()  # TensorFlow is loaded: torch's import of triton would otherwise crash (see hide_triton)
torchvision = pytest.importorskip("torchvision")
import torch  # noqa: E402

from tfmood import models  # noqa: E402
from tfmood.models import mobilenetv2  # noqa: E402
from model_harness import run_model_test  # noqa: E402
from torch_reference import port, torchvision_mobilenetv2  # noqa: E402

TOLERANCE = 1e-5


def randomise(factory, seed=0):
    """`factory()` with random weights *and* batch-norm statistics / affines, so an unported or misplaced tensor
    shows; the convolutions keep torchvision's own initialisation, drawn after seeding torch's global RNG."""
    torch.manual_seed(seed)
    return port.randomize_norms(factory(), seed)


def compare(expected, got, what, spread=0.1):
    difference = float(np.abs(expected - got).max())
    print(f"{what}: max |diff| {difference:.2e} (output std {expected.std():.3f})")
    assert expected.std() > spread, "outputs too flat for the comparison to mean anything"
    assert difference <= TOLERANCE, f"{what}: {difference:.3g} > {TOLERANCE}"


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_imagenet_classifier_matches_torchvision(alpha):
    net = randomise(lambda: torchvision.models.mobilenet_v2(weights=None, width_mult=alpha), seed=1)
    model = models.build("mobilenetv2", input_shape=(None, None, 3), source="torchvision", alpha=alpha,
                         imagenet_classes=1000, dropout=0.2)
    timm_port.copy_weights(net, model, torchvision_mobilenetv2.keras_names(net.features, classifier="classifier.1"))
    assert sum(p.numel() for p in net.parameters()) == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 80)).astype("float32")  # 80 frames: odd at /16
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    compare(expected, np.asarray(model(x.transpose(0, 2, 3, 1), training=False)), f"classifier alpha {alpha}")


class SeedTagger(torch.nn.Module):
    """AMLAG submission 1 (main.ipynb) / HCMUS run 1: [tile the bands] -> bw2col -> torchvision MobileNetV2
    features -> mean pool -> Dropout(0.2) -> Linear(1280, 56) -> sigmoid. bw2col's BN has Keras's epsilon 1e-3, as
    tfmood's stem (PyTorch's default is 1e-5; the stem is the zoo's, not under test here)."""

    def __init__(self, tiles=1):
        super().__init__()
        self.tiles = tiles
        self.stem_bn = torch.nn.BatchNorm2d(1, eps=1e-3)
        self.stem_conv1 = torch.nn.Conv2d(1, 10, 1)
        self.stem_conv2 = torch.nn.Conv2d(10, 3, 1)
        self.features = torchvision.models.mobilenet_v2(weights=None).features
        self.fc = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(1280, 56))

    def forward(self, x):
        x = x.repeat(1, 1, self.tiles, 1)  # np.tile(features, (2, 1)) on [bands, frames]
        x = torch.relu(self.stem_conv2(torch.relu(self.stem_conv1(self.stem_bn(x)))))
        return torch.sigmoid(self.fc(self.features(x).mean((2, 3))))


@pytest.mark.parametrize("bands, tiles", [(32, 1), (16, 2)])  # mel-like (AMLAG), 16 WaveNet bands tiled (HCMUS)
def test_seed_tagger_matches_torchvision_behind_the_stem(bands, tiles):
    reference = randomise(lambda: SeedTagger(tiles), seed=2)
    tagger = models.build("mobilenetv2", input_shape=(bands, None, 1), source="torchvision", dropout=0.2,
                          duplicate_bands=tiles)
    names = torchvision_mobilenetv2.keras_names(reference.features)
    names.update({"stem_bn": "stem_bn", "stem_conv1": "stem_conv1", "stem_conv2": "stem_conv2",
                  "fc.1": "head_scores"})
    timm_port.copy_weights(reference, tagger, names)
    x = np.random.default_rng(3).standard_normal((2, bands, 72, 1)).astype("float32")  # [batch, bands, frames, 1]
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    compare(expected, np.asarray(tagger(x, training=False)), f"tagger {bands} bands x{tiles}", spread=0.01)


def test_attention_segment_cnn_is_torchvisions():
    """AMLAG's MusicSelfAttModel runs torchvision's MobileNetV2 `features` on each segment: the same network."""
    net = randomise(lambda: torchvision.models.mobilenet_v2(weights=None, width_mult=0.35), seed=4).features
    model = models.build("attention_mobilenetv2", input_shape=(32, None, 1), source="torchvision", alpha=0.35,
                         segment_frames=32, head_padding="same")
    backbone = model.branches.get_layer("mobilenetv2_torchvision")
    timm_port.copy_weights(net, backbone, {k.removeprefix("features."): v for k, v in
                                           torchvision_mobilenetv2.keras_names(net, prefix="features").items()})
    x = np.random.default_rng(5).standard_normal((2, 3, 32, 48)).astype("float32")
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    compare(expected, np.asarray(backbone(x.transpose(0, 2, 3, 1), training=False)), "attention segment CNN")


def test_imagenet_option_copies_keras_weights_keeping_each_batch_norm(monkeypatch):
    """`imagenet=True` (torchvision source): keras.applications' weights land layer by layer, and every BN computes
    the same map at eps 1e-5 as Keras's at 1e-3. A random Keras backbone stands in for the ImageNet one (nothing
    downloads at test time)."""
    source = mobilenetv2.keras_backbone(32, 0.5, imagenet=False)
    generator = np.random.default_rng(6)
    for layer in source.layers:
        if layer.weights:
            layer.set_weights([generator.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.get_weights()])
    requested = []
    monkeypatch.setattr(mobilenetv2, "keras_backbone", lambda *args, **kwargs: requested.append(args) or source)
    model = models.build("mobilenetv2", input_shape=(32, None, 1), source="torchvision", alpha=0.5, imagenet=True)
    assert requested == [(32, 0.5, True)]  # the same alpha, with ImageNet weights
    target = model.get_layer("mobilenetv2_torchvision")
    for keras_name, name in mobilenetv2.keras_layer_names().items():
        theirs, mine = source.get_layer(keras_name), target.get_layer(name)
        if hasattr(theirs, "epsilon"):
            gamma, beta, mean, variance = theirs.get_weights()
            g, b, m, v = mine.get_weights()
            np.testing.assert_allclose(gamma / np.sqrt(variance + theirs.epsilon), g / np.sqrt(v + mine.epsilon),
                                       rtol=1e-6)
            np.testing.assert_array_equal(np.stack([gamma, beta, mean]), np.stack([g, b, m]))
        else:
            for a, b in zip(theirs.get_weights(), mine.get_weights(), strict=True):
                np.testing.assert_array_equal(a, b)


def test_torchvision_source_passes_harness():
    """Shapes at two lengths, config round trip, .keras save / load, a training step (tests/model_harness.py)."""
    run_model_test("mobilenetv2", alpha=0.35, source="torchvision", dropout=0.2)
