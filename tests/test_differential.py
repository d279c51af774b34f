"""Differential tests: tfmood's models against PyTorch references of the originals, with the same weights.

Each reference (tests/torch_reference/) is written from the original public code (shared/reference/fidelity.md
names the repositories) and built with random weights and random batch-norm statistics; the weights are ported
into the tfmood model and both run in inference mode on the same random input. Outputs must agree to 1e-5.
Parameter counts are compared at the published sizes. Needs torch (`pip install -e ".[test,torch]"`); skipped
without it. timm backbones are in tests/test_differential_timm.py.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import keras  # noqa: E402

from tfmood import models  # noqa: E402
from torch_reference import amlag, choi_crnn, cpjku, mtg_vggish, port, torchvision_resnet, vqvae_taiinn  # noqa: E402

TOLERANCE = 1e-5


def _input(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def max_diff(keras_out, torch_out) -> float:
    return float(np.max(np.abs(np.asarray(keras_out) - torch_out.detach().numpy())))


def assert_close(keras_out, torch_out, label, tolerance=TOLERANCE):
    """Max |difference| <= tolerance; the figure is printed (`pytest -s`) for the record."""
    diff = max_diff(keras_out, torch_out)
    print(f"\n[differential] {label}: max |diff| {diff:.2e}")
    assert diff <= tolerance, f"{label}: max |diff| {diff:.3g} > {tolerance:g}"


# === CP-JKU: CP ResNet and FA-ResNet (kkoutini/cpjku_dcase19) ===

@pytest.mark.parametrize("model_name, frequency_aware", [("cp_resnet", False), ("fa_resnet", True)])
@pytest.mark.parametrize("rho", [5, 7])
def test_cp_networks_match_cpjku(model_name, frequency_aware, rho):
    torch.manual_seed(rho)
    reference = port.randomize(cpjku.CPResNet(rho, base_channels=8, n_classes=10, frequency_aware=frequency_aware),
                               seed=rho)
    model = models.build(model_name, input_shape=(72, None, 1), num_tags=10, rho=rho, base_channels=8,
                         input_norm=False)
    port.assign(model, cpjku.keras_mapping(reference))
    x = _input((2, 72, 50, 1), seed=rho)
    with torch.no_grad():
        expected = torch.sigmoid(reference(port.to_nchw(x)))  # tfmood's head ends in a sigmoid; CP-JKU's in logits
    assert_close(model(x, training=False), expected, f"{model_name} rho {rho}")


@pytest.mark.parametrize("model_name, frequency_aware, rho, count", [
    ("cp_resnet", False, 5, 3_587_056), ("cp_resnet", False, 7, 3_980_272),
    ("fa_resnet", True, 5, 3_600_368), ("fa_resnet", True, 7, 3_996_656),
])
def test_cp_networks_have_cpjkus_parameter_count(model_name, frequency_aware, rho, count):
    reference = cpjku.CPResNet(rho, base_channels=128, n_classes=56, frequency_aware=frequency_aware)
    model = models.build(model_name, input_shape=(256, None, 1), num_tags=56, rho=rho)
    assert port.trainable_count(reference) == port.keras_trainable_count(model) == count


def test_cpjku_get_maxrf_is_not_the_geometric_receptive_field():
    """CP-JKU's get_maxrf reports 81 / 145; tfmood's max_receptive_field is the geometric field (87 / 135)."""
    from tfmood.models.cp_resnet import max_receptive_field

    assert (cpjku.get_maxrf(5), cpjku.get_maxrf(7)) == (81, 145)
    assert (max_receptive_field(5), max_receptive_field(7)) == (87, 135)


# === MTG baseline VGG-ish (MTG/mtg-jamendo-dataset) through tfmood's own MTG weight port ===

def test_vggish_matches_mtg_baseline_through_the_mtg_port():
    from tfmood.mtg_baseline import port_to_keras

    channels = (8, 16, 16, 16, 8)
    reference = port.randomize(mtg_vggish.CNN(num_class=56, channels=channels), seed=1)
    model = models.build("vggish", input_shape=(96, None, 1), channels=channels)
    state = {k: v.detach().numpy() for k, v in reference.state_dict().items()}
    port_to_keras(state, model)
    x = _input((2, 96, 1366, 1), seed=1)  # the training crop: MTG's flatten sees a 1x1 map
    with torch.no_grad():
        expected = reference(torch.from_numpy(x[..., 0]))
    assert_close(model(x, training=False), expected, "vggish (MTG baseline)")


def test_vggish_has_mtgs_parameter_count():
    assert port.trainable_count(mtg_vggish.CNN(56)) == port.keras_trainable_count(models.build("vggish")) == 448_122


# === Choi's CRNN (keunwoochoi/music-auto_tagging-keras : music_tagger_crnn.py, Keras 1) ===

def _crnn_pair(seed, keras1, channels=(64, 128, 128, 128), **options):
    from tfmood.models import crnn

    torch.manual_seed(seed)
    reference = port.randomize(choi_crnn.MusicTaggerCRNN(num_tags=56, channels=channels, keras1=keras1,
                                                         time_padding=37 if keras1 else 0), seed=seed)
    style = crnn.CHOI2017 if keras1 else {}  # 56 tags (Choi's has 50): the counts below are fidelity.md's
    model = models.build("crnn", input_shape=(96, None, 1), num_tags=56, channels=channels,
                         **{**style, **options})
    port.assign(model, choi_crnn.keras_mapping(reference, port))
    return reference, model


def _crnn_logits_spread(model, x):
    """Sample-to-sample spread of the scores: a near-constant output would make the comparison vacuous."""
    scores = np.asarray(model(x, training=False))
    return float(np.abs(scores[0] - scores[1]).max())


def _check_crnn(seed, keras1, frames, parameters, what):
    """The ported CRNN equals its reference on a `[2, 96, frames, 1]` input: same trainable count, a
    non-constant output, scores within the tolerance."""
    reference, model = _crnn_pair(seed, keras1=keras1)
    x = _input((2, 96, frames, 1), seed=seed)
    with torch.no_grad():
        expected = reference(port.to_nchw(x))
    assert port.trainable_count(reference) == port.keras_trainable_count(model) == parameters
    assert _crnn_logits_spread(model, x) > 100 * TOLERANCE
    assert_close(model(x, training=False), expected, what)


def test_crnn_matches_choi_keras1_crnn():
    """`**crnn.CHOI2017` on Choi's own input (96 x 1366, padded to 1440 = 15 GRU steps): time zero-padding before
    the per-band BN, valid pools, Keras 1 GRUs (hard_sigmoid 0.2 x + 0.5 gates, reset before the product)."""
    _check_crnn(7, True, 1366, 394_296, "crnn CHOI2017 vs Choi's Keras 1 CRNN (96 x 1366)")


@pytest.mark.parametrize("option, value", [("gru", "pytorch"), ("time_padding", 0)])
def test_crnn_choi_options_each_matter(option, value):
    """Dropping Choi's GRU or time padding moves the output by far more than the tolerance (so the test above
    checks each of them; `pool_padding` cannot matter at 1440 frames, which every pool divides). Small widths: the
    point is the size of the change."""
    from tfmood.models import crnn

    channels = (8, 8, 8, 8)
    reference, exact = _crnn_pair(8, keras1=True, channels=channels)
    changed = models.build("crnn", input_shape=(96, None, 1), num_tags=56, channels=channels,
                           **{**crnn.CHOI2017, option: value})
    for layer in exact.layers:
        weights = layer.get_weights()
        if layer.name.startswith("gru") and option == "gru":  # reset_after: Choi's bias as the input bias
            weights = [*weights[:2], np.stack([weights[2], np.zeros_like(weights[2])])]
        if weights:
            changed.get_layer(layer.name).set_weights(weights)
    x = _input((2, 96, 1366, 1), seed=8)
    with torch.no_grad():
        expected = reference(port.to_nchw(x))
    assert_close(exact(x, training=False), expected, "crnn CHOI2017, 8 channels")
    diff = max_diff(changed(x, training=False), expected)
    print(f"[differential] crnn CHOI2017 with {option}={value!r}: max |diff| {diff:.2e}")
    assert diff > 1e-3


def test_crnn_default_pytorch_gru_matches_torch_gru():
    """tfmood's default style ("pytorch": sigmoid gates, reset after the product, two biases) against the same
    CRNN with torch.nn.GRU, on 96 x 960 (the pools divide it, so same and valid pooling agree)."""
    _check_crnn(9, False, 960, 394_488, "crnn default vs CRNN with torch.nn.GRU (96 x 960)")


# === torchvision ResNet-34 ===

@pytest.mark.parametrize("shape", [(37, 45), pytest.param((64, 64), marks=pytest.mark.slow)])  # odd: stride-2 padding
def test_resnet34_matches_torchvision(shape):
    torchvision = pytest.importorskip("torchvision")
    reference = port.randomize(torchvision.models.resnet34(weights=None), seed=2)
    model = models.build("resnet34", input_shape=(*shape, 3), imagenet_classes=1000)
    port.assign(model, torchvision_resnet.keras_mapping(reference))
    x = _input((1, *shape, 3), seed=2)
    with torch.no_grad():
        expected = reference(port.to_nchw(x))
    assert port.trainable_count(reference) == port.keras_trainable_count(model) == 21_797_672
    assert_close(model(x, training=False), expected, f"resnet34 {shape} logits",
                 TOLERANCE * max(1.0, float(expected.abs().max())))  # logits of order 10: relative


# === AMLAG 2019: positions + BERT encoder + pooler and the two heads (sainathadapa/...) ===

def test_amlag_attention_and_segment_heads_match_amlag():
    from tfmood.models.attention import attention_classifier, segment_classifier

    reference = port.randomize(amlag.AttentionHeads(), seed=3)
    tokens = keras.Input((16, 256))
    heads = keras.Model(tokens, {
        "att": attention_classifier(tokens, 56, dropout=0.2, max_segments=64, num_layers=2, heads=4, ffn=1024,
                                    attention_dropout=0.1),
        "clf": segment_classifier(tokens, 56, hidden=256, dropout=0.2)})
    port.assign(heads, amlag.keras_mapping(reference))
    x = _input((2, 16, 256), seed=3)
    with torch.no_grad():
        att, clf = reference(torch.from_numpy(x))
    outputs = heads(x, training=False)
    assert_close(outputs["att"], att, "AMLAG att (positions, BERT, pooler, head)")
    assert_close(outputs["clf"], clf, "AMLAG clf (segment classifier)")


def test_attention_mobilenetv2_has_amlags_parameter_count():
    """MusicSelfAttModel less torchvision MobileNetV2's classifier, which AMLAG builds but never calls."""
    torchvision = pytest.importorskip("torchvision")
    from torch import nn

    cnn = torchvision.models.mobilenet_v2(weights=None).features
    bw2col = nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 10, 1), nn.ReLU(), nn.Conv2d(10, 3, 1), nn.ReLU())
    out_conv = nn.Sequential(nn.Conv2d(1280, 512, 3), nn.ReLU(), nn.Conv2d(512, 256, 1), nn.ReLU())
    count = sum(port.trainable_count(m) for m in (cnn, bw2col, out_conv, amlag.AttentionHeads()))
    model = models.build("attention_mobilenetv2", input_shape=(96, None, 1))
    assert count == port.keras_trainable_count(model) == 9_993_895


# === Taiinn 2019 VQ-VAE (annahung31/moodtheme-tagging) ===

@pytest.fixture(scope="module")
def vqvae_pair():
    from tfmood.models.vqvae import vqvae_decoder, vqvae_encoder

    reference = port.randomize(vqvae_taiinn.VQVAE(dim=16, codes=32), seed=4)
    x = _input((2, 80, 64, 1), seed=4)  # 2 x 32 code vectors
    with torch.no_grad():  # codes near some of the z_e vectors, so that the input uses many codes
        z_e = reference.encoder(port.to_nchw(x)).permute(0, 2, 3, 1).reshape(-1, 16)
        generator = torch.Generator().manual_seed(5)
        picked = z_e[torch.randperm(len(z_e), generator=generator)[:32]]
        reference.codebook.weight.copy_(picked + 0.1 * torch.randn(picked.shape, generator=generator))
    encoder, decoder = vqvae_encoder(80, code_dim=16, num_codes=32), vqvae_decoder(code_dim=16)
    port.assign(encoder, vqvae_taiinn.encoder_mapping(reference))
    port.assign(decoder, vqvae_taiinn.decoder_mapping(reference))
    return reference, encoder, decoder, x


def test_vqvae_encoder_codebook_and_decoder_match_taiinn(vqvae_pair):
    reference, encoder, decoder, x = vqvae_pair
    with torch.no_grad():
        z_e, indices, z_q, reconstruction = reference(port.to_nchw(x))
    to_nhwc = lambda t: t.permute(0, 2, 3, 1)  # noqa: E731
    keras_z_e = keras.Model(encoder.input, encoder.get_layer("enc_res2_add").output)(x, training=False)
    assert_close(keras_z_e, to_nhwc(z_e), "VQ-VAE z_e (encoder, 2 residual blocks)")
    quantizer = encoder.get_layer("codebook")
    np.testing.assert_array_equal(np.asarray(quantizer.nearest(keras_z_e)), indices.numpy())
    assert len(np.unique(indices.numpy())) > 4  # the comparison would be weak on a single code
    keras_z_q = encoder(x, training=False)
    assert_close(keras_z_q, to_nhwc(z_q), "VQ-VAE z_q (codebook, straight-through)")
    assert_close(decoder(to_nhwc(z_q).numpy(), training=False), to_nhwc(reconstruction), "VQ-VAE decoder")


def test_vqvae_gru_joint_norm_head_matches_taiinn():
    """`joint_norm_steps` = Taiinn's LayerNorm((T, 2H)) after the first BiGRU (tiny T, H)."""
    from tfmood.models.vqvae import gru_head

    steps, height, dim, hidden = 6, 2, 4, 8
    reference = port.randomize(vqvae_taiinn.GRUClassifier(dim * height, steps, hidden, dense=(16, 8), classes=5),
                               seed=6)
    z_q = keras.Input((height, steps, dim))
    head = keras.Model(z_q, gru_head(z_q, 5, units=hidden, dense=(16, 8), joint_norm_steps=steps))
    port.assign(head, vqvae_taiinn.gru_mapping(reference))
    x = _input((3, height, steps, dim), seed=6)
    sequence = x.transpose(0, 2, 3, 1).reshape(3, steps, dim * height)  # tfmood's (time, D x h) sequence
    with torch.no_grad():
        expected = reference(torch.from_numpy(sequence))
    assert_close(head(x, training=False), expected, "vqvae_gru head, joint norm")
