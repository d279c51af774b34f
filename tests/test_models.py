"""The convolutional model zoo: every model passes the shared harness (tiny options, a few seconds each),
plus the architecture facts that the harness cannot see (CP-JKU's rho schedule, Shake-Shake, ImageNet errors)."""

import numpy as np
import pytest
import tensorflow as tf

from model_harness import run_model_test
from tfmood import models
from tfmood.models.cp_resnet import kernel_schedule, max_receptive_field
from tfmood.models.layers import FrequencyCoordinate, ShakeShake

TINY = {
    "mobilenetv2": dict(alpha=0.35),
    "cp_resnet": dict(base_channels=8, depth=8),
    "fa_resnet": dict(base_channels=8, depth=8),
    "shake_fa_resnet": dict(base_channels=4, depth=8),
    "resnet34": dict(width=4, stage_blocks=(1, 1, 1, 1)),
    "crnn": dict(channels=(8, 8, 8, 8), gru_units=8),
    "rexnet_100": dict(width_mult=0.25, depth_mult=0.1),
    "mixnet_s": dict(width_mult=0.25, depth_mult=0.1),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_harness(name):
    run_model_test(name, **TINY[name])


def test_cp_resnet_attention_head():
    run_model_test("cp_resnet", base_channels=4, depth=8, attention_avg=True)


def test_efficientnet_b0_harness_on_wavenet_bands():
    """B0 through the harness on HCMUS's 16 WaveNet bands, tiled to the 32 rows EfficientNet needs (the B7 setup)."""
    model = run_model_test("efficientnet_b0", input_shape=(16, None, 1))
    assert model.get_layer("duplicate_bands").output.shape[1] == 32


def test_efficientnet_rejects_bad_duplicate_bands():
    with pytest.raises(ValueError, match="duplicate_bands"):
        models.build("efficientnet_b0", input_shape=(16, None, 1), duplicate_bands=0)


@pytest.mark.slow
def test_efficientnet_b0_timm_source_harness():
    """SELAB's timm-style EfficientNet-B0 (symmetric padding, zoo mobile blocks) through the shared harness."""
    run_model_test("efficientnet_b0", input_shape=(32, None, 1), source="timm", drop_connect_rate=0.2)


def _layers(model, kind):
    return [l for l in model._flatten_layers(include_self=False, recursive=True) if isinstance(l, kind)]


def test_efficientnet_settings_follow_each_source():
    """HCMUS (efficientnet_pytorch, keras.applications): head dropout 0.2, drop-connect 0.2 * b / 16 on the skip
    blocks, backbone BN momentum 0.99 (PyTorch 0.01) kept through models.build while bw2col's BN gets 0.9.
    SELAB (timm create_model): no head dropout, no stochastic depth, timm's BN momentum (PyTorch 0.1)."""
    import keras

    hcmus = models.build("efficientnet_b0", input_shape=(32, None, 1))
    assert hcmus.get_layer("head_dropout").rate == 0.2
    drops = sorted(l.rate for l in _layers(hcmus, keras.layers.Dropout) if l.name.endswith("_drop"))
    np.testing.assert_allclose(drops, [0.2 * b / 16 for b in (2, 4, 6, 7, 9, 10, 12, 13, 14)])
    momenta = {(l.name == "stem_bn", l.momentum) for l in _layers(hcmus, keras.layers.BatchNormalization)}
    assert momenta == {(True, 0.9), (False, 0.99)}

    selab = models.build("efficientnet_b0", input_shape=(32, None, 1), source="timm")
    assert not _layers(selab, keras.layers.Dropout)
    assert {l.momentum for l in _layers(selab, keras.layers.BatchNormalization)} == {0.9}
    assert {l.epsilon for l in _layers(selab, keras.layers.BatchNormalization) if l.name != "stem_bn"} == {1e-5}

    options = dict(dropout=0.3, drop_connect_rate=0.1, backbone_bn_momentum=0.95)
    for source in ("keras", "timm"):
        model = models.build("efficientnet_b0", input_shape=(32, None, 1), source=source, **options)
        assert model.get_layer("head_dropout").rate == 0.3
        block_rates = [l.rate for l in _layers(model, keras.layers.Dropout) if l.name != "head_dropout"]
        assert len(block_rates) == 9 and max(block_rates) == pytest.approx(0.1 * 14 / 16)
        assert {l.momentum for l in _layers(model, keras.layers.BatchNormalization) if l.name != "stem_bn"} == {0.95}


def test_mixnet_has_no_head_dropout_by_default():
    """timm's mixnet_s (SELAB's create_model) has drop_rate 0; ReXNet-100's timm default is 0.2."""
    assert "head_dropout" not in [l.name for l in models.build("mixnet_s", **TINY["mixnet_s"]).layers]
    assert models.build("rexnet_100", **TINY["rexnet_100"]).get_layer("head_dropout").rate == 0.2


def test_timm_source_imagenet_and_port_file_errors(tmp_path):
    with pytest.raises(ValueError, match="tools/port_timm.py"):
        models.build("efficientnet_b0", input_shape=(32, None, 1), source="timm", imagenet=True)
    with pytest.raises(ValueError, match="needs source='timm'"):
        models.build("efficientnet_b0", input_shape=(32, None, 1), weights="x.keras")
    missing = str(tmp_path / "missing.keras")
    with pytest.raises(FileNotFoundError, match="missing.keras': no such file"):
        models.build("mixnet_s", weights=missing, **TINY["mixnet_s"])
    other = models.build("rexnet_100", input_shape=(None, None, 3), imagenet_classes=10, **TINY["rexnet_100"])
    other.save(tmp_path / "rexnet.keras")
    with pytest.raises(ValueError, match="holds 'rexnet_100', not 'mixnet_s'"):
        models.build("mixnet_s", weights=str(tmp_path / "rexnet.keras"), **TINY["mixnet_s"])
    wide = dict(TINY["rexnet_100"], width_mult=0.5)
    with pytest.raises(ValueError, match="other width/depth options"):
        models.build("rexnet_100", weights=str(tmp_path / "rexnet.keras"), **wide)


def test_port_file_sets_the_backbone_and_keeps_stem_and_head(tmp_path):
    """Torch-free half of the timm port: a port file (timm's classifier) -> a tagger's backbone, by layer name."""
    port = models.build("mixnet_s", input_shape=(None, None, 3), imagenet_classes=10, **TINY["mixnet_s"])
    for layer in port.layers:  # distinguishable values
        layer.set_weights([np.full(w.shape, 0.5 + i, "float32") for i, w in enumerate(layer.get_weights())])
    port.save(tmp_path / "mixnet.keras")
    tagger = models.build("mixnet_s", weights=str(tmp_path / "mixnet.keras"), **TINY["mixnet_s"])
    fresh = models.build("mixnet_s", **TINY["mixnet_s"])
    for layer in tagger.layers:
        if not layer.weights:
            continue
        if layer.name in ("stem_bn", "stem_conv1", "stem_conv2", "head_scores"):
            assert not np.allclose(layer.get_weights()[0], 0.5)
        else:
            for mine, theirs in zip(layer.get_weights(), port.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(mine, theirs)
    assert len(tagger.weights) == len(fresh.weights)


@pytest.mark.slow
def test_efficientnet_b7_harness():
    run_model_test("efficientnet_b7", input_shape=(16, None, 1), frames=(64, 37))


@pytest.mark.slow
def test_efficientnet_b7_builds_with_wavenet_defaults():
    model = models.build("efficientnet_b7", input_shape=(16, None, 1))
    assert model.get_layer("duplicate_bands").output.shape[1] == 32
    assert model.get_layer("head_dropout").rate == 0.5  # efficientnet_pytorch's B7 (HCMUS)
    assert 63e6 < model.count_params() < 68e6  # Keras's EfficientNetB7 trunk is 64.1 M parameters


@pytest.mark.parametrize("rho, schedule", [
    (5, [([3, 3, 3, 3], [1, 3, 3, 1]), ([1, 1, 1, 1], [1, 1, 1, 1]), ([1, 1, 1, 1], [1, 1, 1, 1])]),
    (7, [([3, 3, 3, 3], [1, 3, 3, 3]), ([3, 1, 1, 1], [1, 1, 1, 1]), ([1, 1, 1, 1], [1, 1, 1, 1])]),
])
def test_rho_kernel_schedule_matches_systems_md(rho, schedule):
    assert kernel_schedule(rho) == schedule


def test_max_receptive_field_table():
    table = {0: 23, 1: 31, 2: 39, 3: 55, 4: 71, 5: 87, 6: 103, 7: 135, 8: 167, 9: 199, 10: 231, 12: 295,
             14: 359, 15: 391}
    assert {rho: max_receptive_field(rho) for rho in table} == table


def test_cp_resnet_kernels_and_stem_padding_follow_rho():
    model = models.build("cp_resnet", input_shape=(256, None, 1), rho=5, base_channels=4)
    assert model.get_layer("stage1_block4_conv2").kernel_size == (1, 1)
    assert model.get_layer("stage1_block3_conv2").kernel_size == (3, 3)
    stem = model.get_layer("stem_conv").output.shape
    assert stem[1] == 127  # padding 1 (not "same"): floor((256 + 2 - 5) / 2) + 1
    assert model.get_layer("stage1_pool4").output.shape[1] == 15  # 127 -> 63 -> 31 -> 15


def test_cp_resnet_rejects_bad_rho_and_depth():
    with pytest.raises(ValueError, match="rho"):
        models.build("cp_resnet", input_shape=(32, None, 1), rho=99)
    with pytest.raises(ValueError, match="depth"):
        models.build("cp_resnet", input_shape=(32, None, 1), depth=10)


def test_cp_resnet_depth_keeps_the_first_blocks_of_each_stage():
    model = models.build("cp_resnet", input_shape=(32, None, 1), base_channels=4, depth=14)
    names = {layer.name for layer in model.layers}
    assert {"stage1_block2_conv1", "stage3_block2_conv2", "stage1_pool2"} <= names
    assert "stage1_block3_conv1" not in names and "stage1_pool4" not in names


def test_frequency_coordinate_follows_current_height():
    x = np.zeros((2, 4, 3, 5), "float32")
    out = np.asarray(FrequencyCoordinate()(x))
    assert out.shape == (2, 4, 3, 6)
    np.testing.assert_allclose(out[0, :, 0, -1], [-1.0, -0.5, 0.0, 0.5])  # 2f/F - 1 for F = 4
    np.testing.assert_allclose(out[1, :, 2, -1], out[0, :, 0, -1])  # constant along time and batch


def test_fa_resnet_convs_see_the_extra_channel():
    model = models.build("fa_resnet", input_shape=(32, None, 1), base_channels=4)
    assert model.get_layer("stage1_block1_conv1").kernel.shape[2] == 4 + 1
    assert model.get_layer("stage2_block1_conv2").kernel.shape[2] == 8 + 1


def test_shake_shake_forward_is_random_in_training_and_half_at_inference():
    layer = ShakeShake(seed=1)
    first, second = np.ones((8, 2, 2, 3), "float32"), np.zeros((8, 2, 2, 3), "float32")
    np.testing.assert_allclose(np.asarray(layer([first, second], training=False)), 0.5)
    one, two = (np.asarray(layer([first, second], training=True)) for _ in range(2))
    assert not np.allclose(one, two), "two training calls drew the same alpha"
    assert np.ptp(one[:, 0, 0, 0]) > 0, "alpha is not drawn per sample"
    np.testing.assert_allclose(one, one[:, :1, :1, :1] * np.ones_like(one))  # one alpha per sample
    assert one.min() >= 0.0 and one.max() <= 1.0


def test_shake_shake_backward_uses_an_independent_beta():
    layer = ShakeShake(seed=2)
    first = tf.Variable(np.ones((16, 1, 1, 1), "float32"))
    second = tf.Variable(np.zeros((16, 1, 1, 1), "float32"))
    with tf.GradientTape() as tape:
        mixed = layer([first, second], training=True)  # = alpha per sample, since b1 = 1 and b2 = 0
        total = tf.reduce_sum(mixed)
    grad_first, grad_second = tape.gradient(total, [first, second])
    alpha, beta = np.asarray(mixed).ravel(), np.asarray(grad_first).ravel()
    assert np.all((beta >= 0) & (beta <= 1))
    np.testing.assert_allclose(np.asarray(grad_second).ravel(), 1 - beta, atol=1e-6)
    assert not np.allclose(alpha, beta), "the backward pass used the forward alpha"


def test_shake_fa_resnet_is_deterministic_at_inference():
    model = models.build("shake_fa_resnet", input_shape=(32, None, 1), base_channels=4)
    x = np.random.default_rng(0).standard_normal((2, 32, 40, 1)).astype("float32")
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), np.asarray(model(x, training=False)))


@pytest.mark.parametrize("name, reference, options", [
    ("rexnet_100", 4_796_873, {}), ("mixnet_s", 4_134_606, {}), ("efficientnet_b0", 5_288_548, {"source": "timm"}),
    ("resnet34", 21_797_672, {})])
def test_timm_rebuilds_match_reference_parameter_counts(name, reference, options):
    """Trainable parameters of the bare 224x224x3 ImageNet classifier; timm 1.0.31 reports 4,796,873 / 4,134,606 /
    5,288,548 (efficientnet_b0), torchvision 21,797,672 for ResNet-34."""
    model = models.build(name, input_shape=(224, 224, 3), imagenet_classes=1000, **options)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == reference


def test_rexnet_channels_grow_linearly():
    from tfmood.models.rexnet import block_config
    assert [c for c, *_ in block_config()] == [16, 27, 38, 50, 61, 72, 84, 95, 106, 117, 128, 140, 151, 162,
                                               174, 185]


def test_mixnet_block_strings_decode():
    from tfmood.models.mixnet import parse_block
    spec = parse_block("ir_r2_k3.5.7.9_a1.1_p1.1_s1_e3_c120_se0.5_nsw")
    assert spec == dict(type="ir", repeats=2, kernels=[3, 5, 7, 9], expand_kernels=[1, 1], project_kernels=[1, 1],
                        stride=1, expansion=3.0, channels=120, se=0.5, act="swish")
    assert parse_block("ds_r1_k3_s1_e1_c16")["act"] == "relu"


def test_imagenet_download_failure_says_what_to_do(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: Network is unreachable")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(RuntimeError, match="network access"):
        models.build("efficientnet_b0", input_shape=(32, None, 1), imagenet=True)


def test_builders_have_one_line_descriptions():
    described = models.describe()
    for name in [*TINY, "efficientnet_b0", "efficientnet_b7"]:
        assert 20 < len(described[name]) <= 120, f"{name}: {described[name]!r}"


def test_variable_length_backbone_keeps_imagenet_input_statistics(monkeypatch):
    """EfficientNet's Normalization layer must use the loaded ImageNet mean/variance after the clone."""
    import keras

    from tfmood.models import applications

    def fake_imagenet(app_name, imagenet, **kwargs):  # stands in for a download: non-trivial statistics
        fixed = getattr(keras.applications, app_name)(weights=None, **kwargs)
        norm = next(layer for layer in fixed.layers if isinstance(layer, keras.layers.Normalization))
        norm.adapt_mean.assign(np.full(norm.adapt_mean.shape, 0.5, "float32"))
        norm.adapt_variance.assign(np.full(norm.adapt_variance.shape, 4.0, "float32"))
        norm.finalize_state()
        return fixed

    monkeypatch.setattr(applications, "build_application", fake_imagenet)
    free = applications.variable_length_backbone("EfficientNetB0", 32, imagenet=True)
    norm = next(layer for layer in free.layers if isinstance(layer, keras.layers.Normalization))
    out = np.asarray(norm(np.full((1, 2, 2, 3), 2.5, "float32")))
    np.testing.assert_allclose(out, (2.5 - 0.5) / 2.0, rtol=1e-5)
