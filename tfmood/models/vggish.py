"""VGG-ish fully convolutional tagger: the MTG-Jamendo baseline (systems.md F1).

Choi, Fazekas & Sandler, "Automatic tagging using deep convolutional neural networks", ISMIR 2016 (the FCN),
as trained by MTG for the MTG-Jamendo mood/theme baseline (`MTG/mtg-jamendo-dataset : scripts/baseline/model.py`,
official test PR-AUC-macro 0.1077 / ROC-AUC-macro 0.7258).

Input BN -> 5 x [Conv 3x3 'same' -> BN -> ELU -> MaxPool] with 64, 128, 128, 128, 64 channels and pools
(2,4), (2,4), (2,4), (3,5), (4,4) -> Dropout 0.5 -> Dense sigmoid. Layer names follow the PyTorch module
(`bn_init`, `conv_1`, `bn_1`, ..., `dense`) so `tfmood.mtg_baseline` maps MTG's weights one to one; BN uses
PyTorch's eps 1e-5 and momentum 0.1 (Keras momentum 0.9).

Differs from MTG's module, so that any length works: MTG flattens a 1x1x64 map, which exists only for inputs of
1280-1599 frames (96 x 1366 in training). Here the time axis is first repeated (tiled) up to 1280 frames, the
pooling product, inside the model, and a global max pool replaces the flatten; for 96 x 1366 the last map is
1x1, so the result equals MTG's flatten exactly. Longer inputs take the max over time of the last map, the same
operation as the FCN's final max pool. Frequency is not padded: the model needs >= 96 bands.
"""

import keras
from keras import layers, ops

from tfmood.models import register
from tfmood.models.stem import input_layer

CHANNELS = (64, 128, 128, 128, 64)
POOLS = ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))
MIN_BANDS = 96    # product of the frequency pools
MIN_FRAMES = 1280  # product of the time pools
BN = dict(epsilon=1e-5, momentum=0.9)  # PyTorch BatchNorm defaults (eps 1e-5, momentum 0.1)


@keras.saving.register_keras_serializable(package="tfmood")
class RepeatTime(layers.Layer):
    """Tile `[batch, bands, time, channels]` along time up to `min_frames` (longer inputs pass unchanged).

    Repeating the clip keeps the statistics of real audio, where zero padding would add a constant 0 dB block.
    """

    def __init__(self, min_frames, **kwargs):
        super().__init__(**kwargs)
        if int(min_frames) < 1:
            raise ValueError(f"`min_frames` must be >= 1. Received: {min_frames}")
        self.min_frames = int(min_frames)

    def call(self, x):
        frames = ops.shape(x)[2]
        # Gather frame (i mod frames) for i < max(frames, min_frames): works for unknown lengths in a graph.
        index = ops.mod(ops.arange(ops.maximum(frames, self.min_frames)), frames)
        return ops.take(x, index, axis=2)

    def compute_output_shape(self, input_shape):
        frames = input_shape[2]
        return (input_shape[0], input_shape[1], None if frames is None else max(frames, self.min_frames),
                input_shape[3])

    def get_config(self):
        return {**super().get_config(), "min_frames": self.min_frames}


@register("vggish")
def build_vggish(input_shape=(96, None, 1), num_tags=56, channels=CHANNELS, dropout=0.5):
    """VGG-ish FCN (Choi et al. 2016), MTG-Jamendo's baseline; loads MTG's published weights."""
    channels = tuple(int(c) for c in channels)
    if len(channels) != len(POOLS) or min(channels) < 1:
        raise ValueError(f"`channels` must be {len(POOLS)} positive widths. Received: {channels}")
    if input_shape[0] is None or input_shape[0] < MIN_BANDS:
        raise ValueError(f"vggish needs at least {MIN_BANDS} mel bands (its pools divide frequency by "
                         f"{MIN_BANDS}). Received input shape {input_shape}")
    # === Layers / Functional Model ===
    inputs = input_layer(input_shape)
    x = RepeatTime(MIN_FRAMES, name="repeat_time")(inputs)
    x = layers.BatchNormalization(name="bn_init", **BN)(x)
    for i, (width, pool) in enumerate(zip(channels, POOLS), start=1):
        x = layers.Conv2D(width, 3, padding="same", name=f"conv_{i}")(x)
        x = layers.BatchNormalization(name=f"bn_{i}", **BN)(x)
        x = layers.ELU(name=f"elu_{i}")(x)
        x = layers.MaxPooling2D(pool, name=f"mp_{i}")(x)
    x = layers.GlobalMaxPooling2D(name="global_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_tags, activation="sigmoid", dtype="float32", name="dense")(x)
    return keras.Model(inputs, outputs, name="vggish")
