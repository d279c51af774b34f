"""VQ-VAE (Taiinn 2019): codebook, straight-through gradient, losses, pre-training and encoder transfer."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json

import numpy as np
import keras
import pytest
import tensorflow as tf

from model_harness import run_model_test
from tfmood import metadata, models
from tfmood.models import vqvae
from tfmood.tags import TAGS

TINY = dict(code_dim=8, num_codes=16)
GRU = dict(TINY, units=8, dense=(16, 8))
CNN = dict(TINY, channels=(4, 4, 4, 4, 4))


def _quantizer(beta=0.25):
    layer = vqvae.VectorQuantizer(num_codes=16, code_dim=4, beta=beta)
    layer.build((None, 4))
    layer.codebook.assign(np.random.default_rng(0).normal(size=(16, 4)).astype("float32"))
    return layer


def test_codebook_picks_the_nearest_code():
    layer = _quantizer()
    z_e = np.random.default_rng(1).normal(size=(2, 3, 5, 4)).astype("float32")
    codes = np.asarray(layer.codebook)
    brute = np.argmin(((z_e[..., None, :] - codes) ** 2).sum(-1), axis=-1)
    np.testing.assert_array_equal(np.asarray(layer.nearest(z_e)), brute)
    np.testing.assert_allclose(layer(z_e), codes[brute], atol=1e-6)


@pytest.mark.parametrize("dilation, frames", [(2, 13), (16, 37), (4, 8)])
def test_halving_dilated_conv_matches_pytorch_stride_2_dilated_conv(dilation, frames):
    layer = vqvae.HalvingDilatedConv(3, dilation)
    x = np.random.default_rng(5).normal(size=(2, 16, frames, 2)).astype("float32")
    layer.build(x.shape)
    kernel, bias = layer.conv.kernel, layer.conv.bias
    layer.conv.bias.assign(np.arange(3, dtype="float32"))
    out = np.asarray(layer(x))
    # PyTorch Conv2d(k=(4,3), stride=(2,1), padding=(1,d), dilation=(1,d)) = stride-1 dilated conv, every 2nd row
    padded = np.pad(x, ((0, 0), (1, 1), (dilation, dilation), (0, 0)))
    full = tf.nn.conv2d(padded, kernel, strides=1, padding="VALID", dilations=[1, 1, dilation, 1]) + bias
    np.testing.assert_allclose(out, np.asarray(full)[:, ::2], atol=1e-5)
    assert out.shape == (2, 8, frames, 3)


def test_straight_through_passes_the_upstream_gradient_to_the_encoder():
    layer = _quantizer()
    z_e = tf.Variable(np.random.default_rng(2).normal(size=(2, 3, 4)).astype("float32"))
    upstream = np.random.default_rng(3).normal(size=(2, 3, 4)).astype("float32")
    with tf.GradientTape(persistent=True) as tape:
        out = layer(z_e)
        projected = tf.reduce_sum(out * upstream)
    np.testing.assert_allclose(tape.gradient(projected, z_e), upstream, atol=1e-6)
    assert tape.gradient(projected, layer.codebook) is None  # codes learn only through their loss


def test_codebook_and_commitment_losses_are_added():
    beta = 0.25
    layer = _quantizer(beta)
    z_e = np.random.default_rng(4).normal(size=(2, 6, 4)).astype("float32")
    z_q = np.asarray(layer(z_e))
    mse = float(np.mean((z_q - z_e) ** 2))
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), (1 + beta) * mse, rtol=1e-5)
    layer.trainable = False
    layer(z_e)
    assert not layer.losses  # frozen: nothing to learn, no constant noise in the loss


@pytest.mark.parametrize("bands, height", [(96, 2), (128, 4), (32, 1)])
def test_vqvae_reconstructs_the_padded_input_shape(bands, height):
    model = vqvae.build_vqvae(bands=bands, **TINY)
    x = np.random.default_rng(0).normal(-40, 10, (1, bands, 24, 1)).astype("float32")
    assert model(x).shape == (1, vqvae.padded_bands(bands), 24, 1)
    assert model.get_layer("vqvae_encoder").output.shape[1] == height
    assert len(model.losses) == 2  # reconstruction + codebook/commitment


def test_vqvae_gru_passes_harness():
    run_model_test("vqvae_gru", **GRU)


def test_vqvae_cnn_passes_harness():
    run_model_test("vqvae_cnn", **CNN)


def _tiny_records(root, bands=32, tracks=6, frames=80):
    """A converted dataset of random tracks, written in-process (no worker pool)."""
    from tfmood.data import convert

    rng = np.random.default_rng(0)
    listed = []
    for i in range(1, tracks + 1):
        track = metadata.Track(track_id=i, artist_id=f"a{i}", album_id=f"b{i}", path=f"{i:02d}/{i}.mp3",
                               duration=10.0, tags=(TAGS[i % 5],))
        path = track.feature_path(str(root / "features"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path, rng.normal(-40, 10, (bands, frames)).astype("float32"))
        listed.append(track)
    options = convert.Options(features_root=str(root / "features"), out_dir=str(root / "records"), bands=bands)
    tasks = convert.plan({"train": listed}, 1)
    os.makedirs(options.out_dir)
    manifest = convert.build_manifest(tasks, {t: convert.convert_shard(t, options) for t in tasks}, options)
    with open(os.path.join(options.out_dir, convert.MANIFEST), "w") as f:
        json.dump(manifest, f)
    return options.out_dir


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from tfmood.training import vqvae_pretrain

    root = tmp_path_factory.mktemp("vqvae")
    out = str(root / "vqvae.keras")
    keras.utils.set_random_seed(0)
    history = vqvae_pretrain.pretrain(_tiny_records(root), out, epochs=2, batch_size=4, crop_frames=32,
                                      steps_per_epoch=3, learning_rate=1e-2, seed=0, verbose=0, **TINY)
    return out, history


def test_pretrain_writes_model_and_encoder_with_finite_falling_loss(pretrained):
    from tfmood.training.vqvae_pretrain import encoder_weights_path

    out, history = pretrained
    assert all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]
    assert os.path.exists(out) and os.path.exists(encoder_weights_path(out))
    assert not [f for f in os.listdir(os.path.dirname(out)) if ".tmp-" in f]


@pytest.mark.parametrize("source", ["keras", "weights"])
def test_classifier_loads_pretrained_encoder(pretrained, source):
    from tfmood.training.vqvae_pretrain import encoder_weights_path

    out = pretrained[0] if source == "keras" else encoder_weights_path(pretrained[0])
    trained = keras.models.load_model(pretrained[0]).get_layer("vqvae_encoder")
    model = models.build("vqvae_cnn", input_shape=(32, None, 1), encoder_weights=out, **CNN)
    for mine, theirs in zip(model.get_layer("vqvae_encoder").weights, trained.weights):
        np.testing.assert_array_equal(mine, theirs)


def test_frozen_encoder_is_unchanged_by_a_training_step(pretrained):
    model = models.build("vqvae_gru", input_shape=(32, None, 1), encoder_weights=pretrained[0],
                         freeze_encoder=True, **GRU)
    encoder = model.get_layer("vqvae_encoder")
    before = [np.array(w) for w in encoder.weights]  # BN moving statistics included
    head_before = np.array(model.get_layer("scores").kernel)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", run_eagerly=True)
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.normal(-40, 10, (4, 32, 32, 1)).astype("float32"),
                         (rng.random((4, 56)) < 0.2).astype("float32"))
    for b, w in zip(before, encoder.weights):
        np.testing.assert_array_equal(b, w, err_msg=w.path)
    assert not np.array_equal(head_before, model.get_layer("scores").kernel)


def test_unsupported_weight_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.keras or \.weights\.h5"):
        models.build("vqvae_gru", input_shape=(32, None, 1), encoder_weights=str(tmp_path / "x.pt"), **GRU)


def test_residual_block_rectifies_its_skip_like_taiinns_in_place_relu():
    """Taiinn's ResBlock starts with nn.ReLU(inplace=True), so `x + block(x)` adds ReLU(x): with the residual
    branch silenced (BN beta 0, zero conv weights) the block must return ReLU(x), not x."""
    inputs = keras.Input((4, 6, 3))
    block = keras.Model(inputs, vqvae.res_block(inputs, "res"))
    for layer in block.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    x = np.random.default_rng(7).normal(size=(2, 4, 6, 3)).astype("float32")
    assert (x < 0).any()
    np.testing.assert_allclose(block(x, training=False), np.maximum(x, 0.0), atol=1e-6)


def test_joint_norm_normalises_over_time_and_features_together():
    """joint_norm_steps: Taiinn's LayerNorm((T, 2H)) after the first BiGRU, one mean/variance per example."""
    joint = models.build("vqvae_gru", input_shape=(96, None, 1), joint_norm_steps=4, **GRU)
    norm = joint.get_layer("gru1_norm")
    assert tuple(norm.gamma.shape) == (4, 16)  # one affine per (step, feature), as LayerNorm((T, 2H))
    probe = keras.Model(joint.inputs, [norm.input, norm.output])
    x = np.random.default_rng(8).normal(size=(2, 96, 8, 1)).astype("float32") * 20
    before, after = (np.asarray(t) for t in probe([x], training=False))
    mean, var = before.mean(axis=(1, 2), keepdims=True), before.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(after, (before - mean) / np.sqrt(var + 1e-5), atol=1e-4)
    assert np.abs(after.mean(axis=2)).max() > 1e-3  # per-step means are not zero: not a per-step norm
    per_step = models.build("vqvae_gru", input_shape=(96, None, 1), **GRU)
    assert tuple(per_step.get_layer("gru1_norm").gamma.shape) == (16,)


def test_joint_norm_refuses_another_number_of_steps():
    with pytest.raises(ValueError, match="joint_norm_steps=4 .* 6 time steps"):
        models.build("vqvae_gru", input_shape=(96, 12, 1), joint_norm_steps=4, **GRU)
    with pytest.raises(ValueError, match="joint_norm_steps"):
        models.build("vqvae_gru", input_shape=(96, None, 1), joint_norm_steps=0, **GRU)
