"""The NSynth WaveNet autoencoder's encoder (HCMUS 2020's audio features), in Keras, with a TF1 checkpoint loader.

Engel et al., "Neural Audio Synthesis of Musical Notes with WaveNet Autoencoders", ICML 2017; magenta
`models/nsynth/wavenet/h512_bo16.py` (systems.md §D1-D2). 16 kHz mono audio in [-1, 1] becomes
`[batch, samples // 512, 16]` encodings (31.25 frames/s; a 30 s clip gives 937 frames).

    encoder = nsynth_encoder()                                # random weights
    load_nsynth_checkpoint(encoder, "wavenet-ckpt/model.ckpt-200000")
    features = encode(encoder, waveform)                      # float32 (16, frames), MTG band-major layout

Graph, as magenta's `Config.build` (non-causal, 'SAME' padding, bias everywhere): mu-law quantise (mu=255, 8 bit,
/128) -> `ae_startconv` (k3) -> 30 x [ReLU -> `ae_dilatedconv_i` (k3, dilation 2^(i mod 10)) -> ReLU ->
`ae_res_i` (k1), residual add] -> `ae_bottleneck` (k1, 16) -> average pool 512. Layer names are the checkpoint's
variable scopes. Magenta dilates with time_to_batch + 'SAME' conv, which equals a zero-padded dilated conv because
the audio is first trimmed to a multiple of 512 (so every dilation divides the length).
"""

import numpy as np
import keras
from keras import layers, ops

HOP = 512  # samples per encoding frame (ae_hop_length)
SAMPLE_RATE = 16000


@keras.saving.register_keras_serializable(package="tfmood")
class MuLawQuantize(layers.Layer):
    """8-bit mu-law: floor(sign(x) log(1 + mu|x|) / log(1 + mu) * 128) / 128 (magenta `utils.mu_law`)."""

    def __init__(self, mu: int = 255, **kwargs):
        kwargs.setdefault("dtype", "float32")  # float16 would move samples across quantisation steps
        super().__init__(**kwargs)
        self.mu = int(mu)

    def call(self, x):
        companded = ops.sign(x) * ops.log1p(self.mu * ops.abs(x)) / np.log1p(self.mu)
        return ops.floor(companded * 128.0) / 128.0

    def get_config(self):
        return {**super().get_config(), "mu": self.mu}


@keras.saving.register_keras_serializable(package="tfmood")
class TrimToMultiple(layers.Layer):
    """`[batch, samples] -> [batch, samples - samples % multiple, 1]` (magenta `utils.trim_for_encoding`)."""

    def __init__(self, multiple: int = HOP, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, audio):
        length = ops.shape(audio)[1] // self.multiple * self.multiple
        return ops.expand_dims(audio[:, :length], -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, 1)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


def nsynth_encoder(channels: int = 128, num_layers: int = 30, stages: int = 10, bottleneck: int = 16,
                   hop: int = HOP, quantize: bool = True, name: str = "nsynth_encoder") -> keras.Model:
    """`[batch, samples]` audio -> `[batch, samples // hop, bottleneck]`; defaults are NSynth's h512_bo16."""
    if hop % 2 ** ((stages - 1) if num_layers else 0):
        raise ValueError(f"`hop` must be a multiple of the largest dilation 2^{stages - 1}. Received: hop={hop}")
    audio = keras.Input((None,), name="audio")
    x = TrimToMultiple(hop, name="trim")(audio)
    if quantize:
        x = MuLawQuantize(name="mu_law")(x)
    en = layers.Conv1D(channels, 3, padding="same", name="ae_startconv")(x)
    for i in range(num_layers):
        d = layers.ReLU(name=f"ae_relu_in_{i + 1}")(en)
        d = layers.Conv1D(channels, 3, padding="same", dilation_rate=2 ** (i % stages), activation="relu",
                          name=f"ae_dilatedconv_{i + 1}")(d)
        en = layers.Add(name=f"ae_add_{i + 1}")([en, layers.Conv1D(channels, 1, name=f"ae_res_{i + 1}")(d)])
    en = layers.Conv1D(bottleneck, 1, name="ae_bottleneck")(en)
    encoding = layers.AveragePooling1D(hop, hop, name="ae_pool")(en)
    return keras.Model(audio, encoding, name=name)


def checkpoint_layers(model: keras.Model) -> list:
    """The Conv1D layers whose names are checkpoint scopes (`ae_*`), in graph order."""
    return [layer for layer in model.layers if isinstance(layer, layers.Conv1D) and layer.name.startswith("ae_")]


def load_nsynth_checkpoint(model: keras.Model, ckpt_path: str, use_ema=None, scope: str = "") -> dict:
    """Copy `<scope><layer>/W` [1, k, in, out] and `/biases` from a TF1 checkpoint onto `model`'s conv layers.

    `use_ema`: None = take `<var>/ExponentialMovingAverage` shadows when the checkpoint has them for every
    variable (training kept an EMA(0.9999); whether the released checkpoint holds it is [UNVERIFIED]),
    True = require them, False = raw weights. Returns {layer name: checkpoint variable names used}.
    Raises KeyError listing every missing variable, ValueError on a shape mismatch; `model` is then unchanged.
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(ckpt_path)
    available = reader.get_variable_to_shape_map()
    wanted = {layer.name: (f"{scope}{layer.name}/W", f"{scope}{layer.name}/biases")
              for layer in checkpoint_layers(model)}
    shadows = {n: f"{n}/ExponentialMovingAverage" for pair in wanted.values() for n in pair}
    if use_ema is None:
        use_ema = all(s in available for s in shadows.values())
    names = {layer: tuple(shadows[n] if use_ema else n for n in pair) for layer, pair in wanted.items()}
    missing = sorted(n for pair in names.values() for n in pair if n not in available)
    if missing:
        sample = ", ".join(sorted(available)[:8])
        raise KeyError(f"{ckpt_path} lacks {len(missing)} encoder variable(s): {', '.join(missing)}. "
                       f"It holds e.g. {sample}. Check `scope` (received {scope!r}), `use_ema` and the model's "
                       "`channels`/`num_layers`.")
    values = {}
    for layer_name, (w_name, b_name) in names.items():
        layer = model.get_layer(layer_name)
        kernel, bias = reader.get_tensor(w_name)[0], reader.get_tensor(b_name)
        if kernel.shape != tuple(layer.kernel.shape) or bias.shape != tuple(layer.bias.shape):
            raise ValueError(f"{w_name}: checkpoint kernel {kernel.shape} / bias {bias.shape} do not fit layer "
                             f"{layer_name} ({tuple(layer.kernel.shape)} / {tuple(layer.bias.shape)})")
        values[layer_name] = (kernel, bias)
    for layer_name, weights in values.items():  # only after every check passed: no half-loaded model
        model.get_layer(layer_name).set_weights(list(weights))
    return names


def encode(model: keras.Model, waveform: np.ndarray) -> np.ndarray:
    """1-D 16 kHz waveform -> float32 `(bottleneck, frames)` (band-major, as MTG's mel `.npy` files)."""
    waveform = np.asarray(waveform, np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"expected a 1-D mono waveform. Received shape {waveform.shape}")
    hop = model.get_layer("trim").multiple
    if waveform.size < hop:
        raise ValueError(f"audio shorter than one encoding frame ({waveform.size} < {hop} samples)")
    encoding = model(waveform[None], training=False)
    return np.ascontiguousarray(np.asarray(encoding)[0].T, dtype=np.float32)
