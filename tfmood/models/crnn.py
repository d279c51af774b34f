"""Convolutional recurrent network tagger (Choi et al. 2017), CP-JKU 2019 run 4 (`4_crnn`).

Choi, Fazekas, Sandler, Cho, "Convolutional Recurrent Neural Networks for Music Classification", ICASSP 2017:
input BatchNorm, 4 conv blocks (3x3 conv -> BN -> ELU -> max pool -> dropout 0.1; 64/128/128/128 channels; pools
(2,2), (3,3), (4,4), (4,4)) that collapse 96 mel bands to 1, then two GRU(32) layers over time, dropout 0.3
and a sigmoid dense layer. Seed: CP-JKU 2019 run 4 (seeds/002_*); their configuration (gitlab
shreyan/moodwalk) is not public, so everything beyond "a CRNN" is **[UNVERIFIED]** and follows Choi's paper.

Choi's public code (keunwoochoi/music-auto_tagging-keras : music_tagger_crnn.py, Keras 1) differs from the
defaults in three places, each an option; `CHOI2017` sets all three (tests/test_differential.py matches it):
- `time_padding`: the code zero-pads 37 frames on both sides of the 1366-frame input *before* the input
  BatchNorm (1440 = 96 x 15 frames, so the pools divide; the padded zeros are normalised like any frame).
- `pool_padding`: Keras 1 pools "valid" (floor); the default "same" (ceil) keeps any frame/band count valid. (The
  two agree on Choi's 1440 padded frames, which every pool divides.)
- `gru`: Keras 1's GRU gates with `hard_sigmoid` = clip(0.2 x + 0.5, 0, 1) (Keras 3's hard_sigmoid has slope 1/6,
  so the exact function is `keras1_hard_sigmoid`) and applies the reset gate before the recurrent product
  (reset_after=False, one bias per gate: 394,296 parameters for 50 tags, as Choi's). The default "pytorch" is
  torch.nn.GRU's (and Keras 3's default): sigmoid gates, reset after the product, two biases (394,488).
Other differences: when the four pools leave more than one frequency row (fewer/more bands than 96) the rest is
max-pooled away (Choi's Reshape((15, 128)) accepts only 96 x 1366); `channels` / `gru_units` shrink it for tests.
"""

import math

import keras
from keras import layers, ops

from tfmood.models import register
from tfmood.models.stem import input_layer

POOLS = ((2, 2), (3, 3), (4, 4), (4, 4))


@keras.saving.register_keras_serializable(package="tfmood")
def keras1_hard_sigmoid(x):
    """Keras 1's (and Theano's) hard sigmoid, clip(0.2 x + 0.5, 0, 1): the gate activation of Choi's GRUs."""
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


GRU_STYLES = {  # `gru` option -> keras.layers.GRU arguments
    "pytorch": dict(recurrent_activation="sigmoid", reset_after=True),
    "keras1": dict(recurrent_activation=keras1_hard_sigmoid, reset_after=False),
}
CHOI2017 = dict(time_padding=37, pool_padding="valid", gru="keras1")  # music_tagger_crnn.py as published


def conv_block(x, filters, pool, dropout, pool_padding, name):
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
    x = layers.ELU(name=f"{name}_elu")(layers.BatchNormalization(name=f"{name}_bn")(x))
    x = layers.MaxPooling2D(pool, padding=pool_padding, name=f"{name}_pool")(x)
    return layers.Dropout(dropout, name=f"{name}_dropout")(x)


@register("crnn")
def build_crnn(input_shape=(96, None, 1), num_tags=56, channels=(64, 128, 128, 128), gru_units=32,
               conv_dropout=0.1, dropout=0.3, time_padding=0, pool_padding="same", gru="pytorch"):
    """CRNN of Choi et al. 2017 (4 conv blocks, 2x GRU(32)); CP-JKU 2019 run 4 [UNVERIFIED config].
    `**crnn.CHOI2017` builds Choi's published Keras 1 model (zero time padding 37, valid pools, Keras 1 GRUs)."""
    if len(channels) != len(POOLS):
        raise ValueError(f"channels must list {len(POOLS)} conv widths, got {channels!r}.")
    if pool_padding not in ("same", "valid"):
        raise ValueError(f"pool_padding must be 'same' or 'valid' (Choi's Keras 1 code), got {pool_padding!r}.")
    if gru not in GRU_STYLES:
        raise ValueError(f"gru must be one of {sorted(GRU_STYLES)} ('keras1': Choi's code), got {gru!r}.")
    if not isinstance(time_padding, int) or time_padding < 0:
        raise ValueError(f"time_padding must be a non-negative number of frames (Choi: 37), got {time_padding!r}.")
    inputs = input_layer(input_shape)
    x = inputs
    if time_padding:  # before the BN, as Choi's ZeroPadding2D((0, 37)): the zeros are normalised too
        x = layers.ZeroPadding2D(((0, 0), (time_padding, time_padding)), name="time_padding")(x)
    x = layers.BatchNormalization(axis=1, name="input_bn")(x)  # Choi normalises per frequency band
    bands = input_shape[0]
    rounding = math.ceil if pool_padding == "same" else math.floor
    for index, (filters, pool) in enumerate(zip(channels, POOLS)):
        x = conv_block(x, int(filters), pool, conv_dropout, pool_padding, f"block{index + 1}")
        bands = rounding(bands / pool[0])
    if bands < 1:
        raise ValueError(f"{input_shape[0]} bands vanish in the 'valid' pools (2 x 3 x 4 x 4 = 96 needed).")
    if bands > 1:
        x = layers.MaxPooling2D((bands, 1), name="collapse_frequency")(x)
    x = layers.Reshape((-1, int(channels[-1])), name="to_sequence")(x)  # [batch, frames, channels]
    x = layers.GRU(gru_units, return_sequences=True, name="gru1", **GRU_STYLES[gru])(x)
    x = layers.GRU(gru_units, name="gru2", **GRU_STYLES[gru])(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_tags, activation="sigmoid", dtype="float32", name="head_scores")(x)
    return keras.Model(inputs, outputs, name="crnn")
