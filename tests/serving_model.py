"""The smallest servable tagger: one conv over a `[bands, time, 1]` mel, pooled, 56 sigmoid outputs.

    from serving_model import tiny_model  # pytest puts tests/ on sys.path
"""

import keras

from tfmood.tags import TAGS


def tiny_model(bands: int = 96, seed: int = 0, width: int = 4):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(bands, None, 1), name="mel")
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(len(TAGS), activation="sigmoid")(x))
