"""A registered model small enough for training-machinery tests: BN stem -> one conv -> BN -> tagging head.

    import tiny_model  # noqa: F401  (pytest puts tests/ on sys.path; registers "tiny_cnn")

Its BatchNormalization layers make SWA's BN recomputation testable; it trains in well under a second per epoch.
"""

import keras
from keras import layers

from tfmood import models
from tfmood.models.stem import input_layer, tagging_head

NAME = "tiny_cnn"


def tiny_cnn(input_shape=(96, None, 1), num_tags=56, width=4, batch_norm=True):
    """Test-only tagger: (BN) -> conv(width) -> (BN) -> ReLU -> pooled dense head."""
    inputs = input_layer(input_shape)
    x = layers.BatchNormalization(name="bn_in")(inputs) if batch_norm else inputs
    x = layers.Conv2D(width, 3, strides=2, padding="same", name="conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(name="bn_conv")(x)
    x = layers.ReLU(name="relu")(x)
    return keras.Model(inputs, tagging_head(x, num_tags), name=NAME)


if NAME not in models.MODELS:
    models.register(NAME)(tiny_cnn)
