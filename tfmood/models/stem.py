"""Shared input stems that adapt 1-channel spectrograms to ImageNet-style 3-channel backbones."""

import keras
from keras import layers


def bw2col(x, name="stem"):
    """The seeds' 1 -> 3 channel stem (SELAB, HCMUS, AMLAG): BN -> 1x1 conv 1->10 -> ReLU -> 1x1 conv 10->3 -> ReLU.

    A learned colour mapping lets a backbone designed for RGB input use its full first layer.
    """
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.Conv2D(10, 1, activation="relu", name=f"{name}_conv1")(x)
    return layers.Conv2D(3, 1, activation="relu", name=f"{name}_conv2")(x)


def tagging_head(features, num_tags, dropout=0.0, name="head"):
    """Global average pool -> (dropout) -> dense sigmoid scores, kept in float32 for mixed precision."""
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(features)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.Dense(num_tags, activation="sigmoid", dtype="float32", name=f"{name}_scores")(x)


def input_layer(input_shape, name="mel"):
    return keras.Input(shape=input_shape, name=name)
