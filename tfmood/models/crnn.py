"""Convolutional recurrent network tagger (Choi et al. 2017), CP-JKU 2019 run 4 (`4_crnn`).

Choi, Fazekas, Sandler, Cho, "Convolutional Recurrent Neural Networks for Music Classification", ICASSP 2017:
input BatchNorm, 4 conv blocks (3x3 conv -> BN -> ELU -> max pool -> dropout 0.1; 64/128/128/128 channels; pools
(2,2), (3,3), (4,4), (4,4)) that collapse 96 mel bands to 1, then two GRU(32) layers over time, dropout 0.3
and a sigmoid dense layer. Seed: CP-JKU 2019 run 4 (seeds/002_*); their configuration (gitlab
shreyan/moodwalk) is not public, so everything beyond "a CRNN" is **[UNVERIFIED]** and follows Choi's paper.
Differs from the original: pooling uses "same" padding so any number of frames (and bands) works, and when the
four pools leave more than one frequency row (fewer/more bands than 96) the rest is max-pooled away;
`channels` / `gru_units` shrink it for tests.
"""

import math

import keras
from keras import layers

from tfmood.models import register
from tfmood.models.stem import input_layer

POOLS = ((2, 2), (3, 3), (4, 4), (4, 4))


def conv_block(x, filters, pool, dropout, name):
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
    x = layers.ELU(name=f"{name}_elu")(layers.BatchNormalization(name=f"{name}_bn")(x))
    x = layers.MaxPooling2D(pool, padding="same", name=f"{name}_pool")(x)
    return layers.Dropout(dropout, name=f"{name}_dropout")(x)


@register("crnn")
def build_crnn(input_shape=(96, None, 1), num_tags=56, channels=(64, 128, 128, 128), gru_units=32,
               conv_dropout=0.1, dropout=0.3):
    """CRNN of Choi et al. 2017 (4 conv blocks, 2x GRU(32)); CP-JKU 2019 run 4 [UNVERIFIED config]."""
    if len(channels) != len(POOLS):
        raise ValueError(f"channels must list {len(POOLS)} conv widths, got {channels!r}.")
    inputs = input_layer(input_shape)
    x = layers.BatchNormalization(axis=1, name="input_bn")(inputs)  # Choi normalises per frequency band
    bands = input_shape[0]
    for index, (filters, pool) in enumerate(zip(channels, POOLS)):
        x = conv_block(x, int(filters), pool, conv_dropout, f"block{index + 1}")
        bands = math.ceil(bands / pool[0])
    if bands > 1:
        x = layers.MaxPooling2D((bands, 1), name="collapse_frequency")(x)
    x = layers.Reshape((-1, int(channels[-1])), name="to_sequence")(x)  # [batch, frames, channels]
    x = layers.GRU(gru_units, return_sequences=True, name="gru1")(x)
    x = layers.GRU(gru_units, name="gru2")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_tags, activation="sigmoid", dtype="float32", name="head_scores")(x)
    return keras.Model(inputs, outputs, name="crnn")
