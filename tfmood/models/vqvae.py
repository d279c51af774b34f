"""VQ-VAE features + GRU or CNN tagger (Taiinn 2019), and the VQ-VAE itself for pre-training.

van den Oord et al., "Neural Discrete Representation Learning", NeurIPS 2017; Taiinn's MediaEval 2019 system,
`annahung31/moodtheme-tagging : src/{model.py, GRU_model.py}` (systems.md §E2-E4).

    vqvae = build_vqvae(bands=96)                    # pre-training: x -> reconstruction, all losses inside
    model = models.build("vqvae_gru", input_shape=(96, None, 1), encoder_weights="vqvae.keras",
                         freeze_encoder=True)        # or "vqvae_cnn"

Encoder (E2): 4 x [Conv (4,3), stride (2,1), dilation (1, 2/4/8/16) -> BN -> ReLU] halve frequency and keep time,
Conv (5,4) stride (1,2) halves time, 2 ResBlocks -> z_e `[batch, bands/16 - 4, frames/2, D]`. The codebook
(`num_codes` = K = 1024 codes of `code_dim` = D = 256) snaps each D-vector to its nearest code (squared L2) with a
straight-through gradient, and adds `MSE(z_q, sg z_e) + beta * MSE(z_e, sg z_q)` to the model's losses. The
decoder (pre-training only) mirrors it with transposed convs and ends in tanh.

Differs from Taiinn, and why:
- Bands: the encoder is fully convolutional, so any band count that is a multiple of 16 and >= 80 works as is
  (MTG's 96 gives z_e height 2, the paper's 128 gives 4). Other counts are zero-padded (after scaling) at the
  high-frequency end up to the next such size; the reconstruction target is the padded input.
- Input scaling: Taiinn min-maxes log(1 + 10000 mel) to about [-0.9, 0.9] to suit the tanh output; MTG features
  are dB, so `input_scale` (default 0.01, AMLAG's /100) maps them near [-1, 0.5]. [UNVERIFIED] choice.
- Keras refuses stride and dilation together: `HalvingDilatedConv` computes the same conv via time_to_batch.
- GRU head: by default the first LayerNorm normalises each time step over features, so any crop length works.
  Taiinn's `LayerNorm((512, 512))` normalises jointly over (time, features) with a per-(time, feature) affine,
  which ties the model to one number of steps (512 there): `joint_norm_steps=512` builds that; the model then
  takes crops of exactly 2 x 512 frames only.
- CNN head: Taiinn's flatten-to-1280 fits no input shape ([UNVERIFIED], §E4); pools use 'same' padding and a
  global max pool replaces the flatten, so any crop length works.
"""

import keras
from keras import layers, ops

from tfmood.models import register
from tfmood.models.stem import input_layer

MIN_BANDS = 80  # 4 halvings then a 5-row valid conv need >= 5 * 16 bands


def padded_bands(bands: int) -> int:
    """The smallest multiple of 16 that is >= `bands` and >= 80: the encoder's exact-shape input height."""
    return max(MIN_BANDS, -(-bands // 16) * 16)


@keras.saving.register_keras_serializable(package="tfmood")
class PadBands(layers.Layer):
    """Zero-pad the frequency axis (axis 1) at its high end up to `bands` rows."""

    def __init__(self, bands: int, **kwargs):
        super().__init__(**kwargs)
        self.bands = int(bands)

    def call(self, x):
        missing = self.bands - ops.shape(x)[1]  # dynamic: tf.data batches may not carry a static band count
        return ops.pad(x, [(0, 0), (0, missing), (0, 0), (0, 0)])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.bands, *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "bands": self.bands}


@keras.saving.register_keras_serializable(package="tfmood")
class HalvingDilatedConv(layers.Layer):
    """PyTorch `Conv2d(k=(4, 3), stride=(2, 1), padding=(1, d), dilation=(1, d))`: halves frequency, keeps time.

    Keras refuses strides and dilation together, so the time dilation is done as magenta's WaveNet does it
    (time_to_batch): the d interleaved time phases become batch items, an undilated (4, 3) conv with stride
    (2, 1) runs on each, and the phases are woven back. Same arithmetic as PyTorch, none wasted.
    """

    def __init__(self, filters: int, dilation: int, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.dilation = int(filters), int(dilation)
        self.conv = layers.Conv2D(self.filters, (4, 3), strides=(2, 1), name="conv")

    def build(self, input_shape):
        self.conv.build((None, input_shape[1] + 2, None, input_shape[3]))

    def call(self, x):
        d, channels = self.dilation, x.shape[3]
        batch, bands, frames = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
        padded = (frames + d - 1) // d * d  # zeros past the end are what the conv's own padding would read
        x = ops.pad(x, [(0, 0), (0, 0), (0, padded - frames), (0, 0)])
        x = ops.reshape(ops.transpose(ops.reshape(x, (batch, bands, padded // d, d, channels)), (0, 3, 1, 2, 4)),
                        (batch * d, bands, padded // d, channels))
        y = self.conv(ops.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)]))
        y = ops.reshape(y, (batch, d, ops.shape(y)[1], padded // d, self.filters))
        y = ops.reshape(ops.transpose(y, (0, 2, 3, 1, 4)), (batch, ops.shape(y)[2], padded, self.filters))
        return y[:, :, :frames]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None if input_shape[1] is None else input_shape[1] // 2, input_shape[2], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dilation": self.dilation}


@keras.saving.register_keras_serializable(package="tfmood")
class VectorQuantizer(layers.Layer):
    """Nearest-code quantisation of the last axis with a straight-through gradient and the VQ-VAE losses.

    Returns `z_e + stop_gradient(z_q - z_e)`: the value of z_q, the gradient of z_e. The codebook learns only
    through its loss `MSE(z_q, sg z_e)`; `beta * MSE(z_e, sg z_q)` commits the encoder to its codes. A frozen
    quantizer adds no loss (both terms would be constants).
    """

    def __init__(self, num_codes: int = 1024, code_dim: int = 256, beta: float = 1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")  # distances in float16 pick wrong codes
        super().__init__(**kwargs)
        if num_codes < 1 or code_dim < 1:
            raise ValueError(f"`num_codes` and `code_dim` must be >= 1. Received: {num_codes}, {code_dim}")
        self.num_codes, self.code_dim, self.beta = int(num_codes), int(code_dim), float(beta)

    def build(self, input_shape):
        if input_shape[-1] != self.code_dim:
            raise ValueError(f"VectorQuantizer expects {self.code_dim} channels. Received shape {input_shape}")
        limit = 1.0 / self.num_codes  # Taiinn / pytorch-vqvae: U(-1/K, 1/K)
        self.codebook = self.add_weight(shape=(self.num_codes, self.code_dim), name="codebook",
                                        initializer=keras.initializers.RandomUniform(-limit, limit))

    def nearest(self, z_e):
        """Indices `[...]` of the nearest code to each `code_dim` vector of `z_e`."""
        flat = ops.reshape(z_e, (-1, self.code_dim))
        distances = (ops.sum(flat ** 2, axis=1, keepdims=True) - 2 * ops.matmul(flat, ops.transpose(self.codebook))
                     + ops.sum(self.codebook ** 2, axis=1)[None])
        return ops.reshape(ops.argmin(distances, axis=1), ops.shape(z_e)[:-1])

    def call(self, z_e):
        z_q = ops.take(self.codebook, self.nearest(z_e), axis=0)
        if self.trainable:
            codebook_loss = ops.mean((z_q - ops.stop_gradient(z_e)) ** 2)
            commitment = ops.mean((z_e - ops.stop_gradient(z_q)) ** 2)
            self.add_loss(codebook_loss + self.beta * commitment)
        return z_e + ops.stop_gradient(z_q - z_e)

    def get_config(self):
        return {**super().get_config(), "num_codes": self.num_codes, "code_dim": self.code_dim, "beta": self.beta}


def _batch_norm(name):
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)  # PyTorch's defaults


def res_block(x, name):
    """ReLU(x) + F(ReLU(x)), F = Conv3x3 -> BN -> ReLU -> Conv1x1 -> BN (Taiinn's / pytorch-vqvae's ResBlock).

    The skip is rectified too: the original block starts with an in-place `nn.ReLU(True)`, which overwrites x
    before `x + block(x)` reads it, so the block that was trained returns ReLU(x) + F(ReLU(x)), not x + F(...).
    """
    dim = x.shape[-1]
    rectified = layers.ReLU(name=f"{name}_relu1")(x)
    y = _batch_norm(f"{name}_bn1")(layers.Conv2D(dim, 3, padding="same", name=f"{name}_conv1")(rectified))
    y = layers.ReLU(name=f"{name}_relu2")(y)
    y = _batch_norm(f"{name}_bn2")(layers.Conv2D(dim, 1, name=f"{name}_conv2")(y))
    return layers.Add(name=f"{name}_add")([rectified, y])


def vqvae_encoder(bands: int, code_dim: int = 256, num_codes: int = 1024, beta: float = 1.0) -> keras.Model:
    """`[padded_bands, frames, 1]` (scaled) -> straight-through `z_q` `[bands/16 - 4, frames/2, code_dim]`."""
    if bands != padded_bands(bands):
        raise ValueError(f"encoder input needs a multiple of 16 >= {MIN_BANDS} bands. Received: {bands}")
    inputs = keras.Input((bands, None, 1), name="scaled_mel")
    x = inputs
    for i, dilation in enumerate((2, 4, 8, 16)):
        x = HalvingDilatedConv(code_dim, dilation, name=f"enc_conv{i + 1}")(x)
        x = layers.ReLU(name=f"enc_relu{i + 1}")(_batch_norm(f"enc_bn{i + 1}")(x))
    x = layers.ZeroPadding2D(((0, 0), (1, 1)), name="enc_pad5")(x)
    x = layers.Conv2D(code_dim, (5, 4), strides=(1, 2), name="enc_conv5")(x)
    z_e = res_block(res_block(x, "enc_res1"), "enc_res2")
    z_q = VectorQuantizer(num_codes, code_dim, beta, name="codebook")(z_e)
    return keras.Model(inputs, z_q, name="vqvae_encoder")


def _transposed(x, filters, kernel, strides, crop, name):
    x = layers.Conv2DTranspose(filters, kernel, strides=strides, name=f"{name}_convt")(x)
    return layers.Cropping2D(crop, name=f"{name}_crop")(x)


def vqvae_decoder(code_dim: int = 256) -> keras.Model:
    """`z_q [h, frames/2, code_dim]` -> tanh reconstruction `[16 h + 64, frames, 1]` (Taiinn's decoder)."""
    z_q = keras.Input((None, None, code_dim), name="z_q")
    x = layers.ReLU(name="dec_relu0")(res_block(res_block(z_q, "dec_res1"), "dec_res2"))
    # (kernel, stride, (freq crop, time crop)) = PyTorch ConvTranspose2d padding
    specs = [((4, 4), (1, 2), (0, 1)), ((4, 3), (2, 1), (0, 1)), ((4, 3), (2, 1), (1, 1)), ((4, 3), (2, 1), (1, 1))]
    for i, (kernel, strides, (fc, tc)) in enumerate(specs):
        x = _transposed(x, code_dim, kernel, strides, ((fc, fc), (tc, tc)), f"dec{i + 1}")
        x = layers.ReLU(name=f"dec_relu{i + 1}")(_batch_norm(f"dec_bn{i + 1}")(x))
    x = _transposed(x, 1, (4, 3), (2, 1), ((1, 1), (1, 1)), "dec5")
    return keras.Model(z_q, layers.Activation("tanh", dtype="float32", name="dec_tanh")(x), name="vqvae_decoder")


def scale_and_pad(x, input_scale, input_offset):
    """The VQ-VAE's view of a spectrogram: `x * scale + offset`, zero-padded to `padded_bands`."""
    x = layers.Rescaling(input_scale, input_offset, name="input_scaling")(x)
    if x.shape[1] != padded_bands(x.shape[1]):
        x = PadBands(padded_bands(x.shape[1]), name="pad_bands")(x)
    return x


@keras.saving.register_keras_serializable(package="tfmood")
class ReconstructionLoss(layers.Layer):
    """Adds `MSE(reconstruction, target)` to the model's losses; passes the reconstruction through."""

    def call(self, inputs):
        reconstruction, target = inputs
        self.add_loss(ops.mean((ops.cast(reconstruction, "float32") - ops.cast(target, "float32")) ** 2))
        return reconstruction


def build_vqvae(bands: int = 96, code_dim: int = 256, num_codes: int = 1024, beta: float = 1.0,
                input_scale: float = 0.01, input_offset: float = 0.0) -> keras.Model:
    """The pre-training VQ-VAE: `[bands, frames, 1] -> reconstruction`; every loss is inside (compile without one)."""
    inputs = input_layer((bands, None, 1))
    target = scale_and_pad(inputs, input_scale, input_offset)
    z_q = vqvae_encoder(target.shape[1], code_dim, num_codes, beta)(target)
    reconstruction = vqvae_decoder(code_dim)(z_q)
    outputs = ReconstructionLoss(name="reconstruction_loss")([reconstruction, target])
    return keras.Model(inputs, outputs, name="vqvae")


def load_encoder_weights(encoder: keras.Model, path: str) -> None:
    """Copy pre-trained weights onto `encoder`: a VQ-VAE `.keras` file (its `vqvae_encoder`), or an encoder-only
    `.weights.h5` as written by `tfmood.training.vqvae_pretrain`. Weights pre-trained before the residual skip
    was rectified (tfmood before 2026-12-02, x + F(x)) load but compute other codes here: pre-train again."""
    if path.endswith(".keras"):
        source = keras.models.load_model(path, compile=False).get_layer("vqvae_encoder")
        mine, theirs = [tuple(w.shape) for w in encoder.weights], [tuple(w.shape) for w in source.weights]
        if mine != theirs:
            raise ValueError(f"the VQ-VAE in {path} does not fit this encoder (band count, code_dim or num_codes "
                             f"differ): its weight shapes {theirs[:2]}... vs {mine[:2]}...")
        encoder.set_weights(source.get_weights())
    elif path.endswith(".weights.h5"):
        encoder.load_weights(path)
    else:
        raise ValueError(f"`encoder_weights` must be a .keras or .weights.h5 file. Received: {path!r}")


def vq_features(input_shape, code_dim, num_codes, beta, input_scale, input_offset, encoder_weights,
                freeze_encoder):
    """Input layer and straight-through codes `[batch, h, frames/2, code_dim]` from a (pre-trained) encoder."""
    inputs = input_layer(input_shape)
    scaled = scale_and_pad(inputs, input_scale, input_offset)
    encoder = vqvae_encoder(scaled.shape[1], code_dim, num_codes, beta)
    if encoder_weights:
        load_encoder_weights(encoder, encoder_weights)
    encoder.trainable = not freeze_encoder  # frozen: BN runs in inference mode, the codebook adds no loss
    return inputs, encoder(scaled)


def _layer_norm(name, axis=-1):
    return layers.LayerNormalization(axis=axis, epsilon=1e-5, name=name)  # PyTorch's eps (Keras: 1e-3)


def gru_head(z_q, num_tags, units=256, dense=(512, 256), dropout=0.3, dense_dropout=0.05, joint_norm_steps=None):
    """Taiinn's RNNclassifier (§E3): 2 x BiGRU(2 layers) over time, LayerNorm'd final states, MLP, sigmoid.

    `joint_norm_steps`: None normalises the first BiGRU's output per time step; an int T normalises it over
    (time, features) together with a per-(t, feature) affine, as Taiinn's `LayerNorm((512, 512))` (T = 512). The
    weights then depend on T, so the model takes sequences of exactly T steps (crops of 2 T frames).
    """
    height, dim = z_q.shape[1], z_q.shape[3]
    steps = z_q.shape[2]
    if joint_norm_steps is not None:
        if not isinstance(joint_norm_steps, int) or joint_norm_steps < 1:
            raise ValueError(f"`joint_norm_steps` must be a positive number of time steps (Taiinn: 512) or None. "
                             f"Received: {joint_norm_steps!r}")
        if steps is not None and steps != joint_norm_steps:
            raise ValueError(f"joint_norm_steps={joint_norm_steps} but the input gives {steps} time steps "
                             f"({2 * steps} frames); the joint LayerNorm needs exactly {2 * joint_norm_steps} frames")
        steps = joint_norm_steps
    x = layers.Permute((2, 3, 1), name="time_major")(z_q)                    # [batch, time, D, h]
    x = layers.Reshape((steps or -1, dim * height), name="sequence")(x)       # Taiinn's view (B, D*h, T)
    states = []
    for block in (1, 2):
        for layer in (1, 2):
            x, forward, backward = layers.Bidirectional(
                layers.GRU(units, return_sequences=True, return_state=True), name=f"gru{block}_{layer}")(x)
            if layer == 1:
                x = layers.Dropout(dropout, name=f"gru{block}_dropout")(x)
            if block == 2:
                states += [forward, backward]  # PyTorch h_n order: layer 1 fwd, bwd, layer 2 fwd, bwd
        if block == 1:
            x = _layer_norm("gru1_norm", axis=(1, 2) if joint_norm_steps else -1)(x)
    # Taiinn's LayerNorm((4, 256)) over the 4 final states is one normalisation over their 1024 values.
    x = _layer_norm("state_norm")(layers.Concatenate(name="states")(states))
    for i, width in enumerate(dense):
        x = layers.Dense(width, name=f"dense{i + 1}")(x)
        x = layers.ReLU(name=f"dense{i + 1}_relu")(layers.Dropout(dense_dropout, name=f"dense{i + 1}_dropout")(x))
    return layers.Dense(num_tags, activation="sigmoid", dtype="float32", name="scores")(x)


CNN_POOLS = ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))


def cnn_head(z_q, num_tags, channels=(64, 128, 256, 512, 256), dropout=0.5):
    """Taiinn's CNN (§E4) on the codes as a 1-channel `[D*h, time]` image; global max instead of flatten-1280."""
    height, dim = z_q.shape[1], z_q.shape[3]
    x = layers.Permute((3, 1, 2), name="code_major")(z_q)                     # [batch, D, h, time]
    x = layers.Reshape((dim * height, -1, 1), name="image")(x)
    x = _batch_norm("input_bn")(x)
    for i, (width, pool) in enumerate(zip(channels, CNN_POOLS)):
        x = layers.Conv2D(width, 3, padding="same", name=f"conv{i + 1}")(x)
        x = layers.ELU(name=f"elu{i + 1}")(_batch_norm(f"bn{i + 1}")(x))
        x = layers.MaxPooling2D(pool, padding="same", name=f"pool{i + 1}")(x)
    x = layers.Dropout(dropout, name="dropout")(layers.GlobalMaxPooling2D(name="global_max")(x))
    x = _batch_norm("scores_bn")(layers.Dense(num_tags, name="logits")(x))
    return layers.Activation("sigmoid", dtype="float32", name="scores")(x)


def _build(name, head, input_shape, num_tags, code_dim=256, num_codes=1024, beta=1.0, input_scale=0.01,
           input_offset=0.0, encoder_weights=None, freeze_encoder=False, **head_options):
    inputs, z_q = vq_features(input_shape, code_dim, num_codes, beta, input_scale, input_offset, encoder_weights,
                              freeze_encoder)
    return keras.Model(inputs, head(z_q, num_tags, **head_options), name=name)


@register("vqvae_gru")
def build_vqvae_gru(input_shape=(96, None, 1), num_tags=56, **options):
    """VQ-VAE encoder + codebook -> BiGRU tagger (Taiinn 2019 runs 1, 3)."""
    return _build("vqvae_gru", gru_head, input_shape, num_tags, **options)


@register("vqvae_cnn")
def build_vqvae_cnn(input_shape=(96, None, 1), num_tags=56, **options):
    """VQ-VAE encoder + codebook -> CNN tagger (Taiinn 2019 runs 2, 4; head [UNVERIFIED])."""
    return _build("vqvae_cnn", cnn_head, input_shape, num_tags, **options)
