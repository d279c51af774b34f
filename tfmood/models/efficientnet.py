"""EfficientNet-B0 / B7 taggers (HCMUS 2020 mel + WaveNet runs; SELAB-HCMUS 2021's co-teaching backbone).

Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019.
Seeds: HCMUS 2020 (seeds/000_*, systems.md D3: B0 on mel-spectrograms, B7 on 16-band NSynth WaveNet features
tiled to 32 rows) and SELAB-HCMUS 2021 (seeds/001_*, C2: B0 via timm). Backbone: `keras.applications.EfficientNetB*`
(include_top=False) on a free time axis, behind the seeds' learned 1->3 channel stem (`bw2col`), global average
pooling and a sigmoid dense head.
Input range (a decision): Keras's EfficientNet starts with Rescaling(1/255) and an ImageNet Normalization
layer, i.e. it expects 0..255 RGB. We treat bw2col's ReLU output as 0..1 intensities and scale it by 255 first,
so with `imagenet=True` the pretrained stem sees its usual statistics, and without ImageNet weights (the
Normalization layer is then the identity) the two rescalings cancel.
Differs from the seeds: ImageNet weights are opt-in; `duplicate_bands` reproduces HCMUS's `np.tile` of the WaveNet
features inside the model instead of on disk (default: just enough copies to reach the 32 rows Keras's EfficientNet
needs, so 2 for 16 WaveNet bands and 1 for 96 mel bands); efficientnet_pytorch / timm use symmetric stride-2
padding where Keras pads (0, 1), a detail that only matters when porting weights.
"""

import keras
from keras import layers

from tfmood.models import register
from tfmood.models.applications import variable_length_backbone
from tfmood.models.stem import bw2col, input_layer, tagging_head


MIN_ROWS = 32  # keras.applications' EfficientNet refuses inputs smaller than 32 x 32


def build_efficientnet(variant, input_shape, num_tags, duplicate_bands, dropout, imagenet):
    if duplicate_bands is None:  # just enough copies for the backbone: 16 WaveNet bands -> 2 (HCMUS), 96 mel -> 1
        duplicate_bands = -(-MIN_ROWS // input_shape[0])
    if not isinstance(duplicate_bands, int) or duplicate_bands < 1:
        raise ValueError(f"duplicate_bands must be a positive integer (2 tiles 16 WaveNet bands to 32 rows), "
                         f"got {duplicate_bands!r}.")
    inputs = input_layer(input_shape)
    x = inputs
    if duplicate_bands > 1:  # HCMUS: np.tile(features, (2, 1)) stacks copies along frequency
        x = layers.Concatenate(axis=1, name="duplicate_bands")([inputs] * duplicate_bands)
    rgb = layers.Rescaling(255.0, name="stem_to_rgb_range")(bw2col(x))
    backbone = variable_length_backbone(f"EfficientNet{variant}", input_shape[0] * duplicate_bands, imagenet)
    outputs = tagging_head(backbone(rgb), num_tags, dropout)
    return keras.Model(inputs, outputs, name=f"efficientnet_{variant.lower()}")


@register("efficientnet_b0")
def build_efficientnet_b0(input_shape=(96, None, 1), num_tags=56, duplicate_bands=None, dropout=0.0,
                          imagenet=False):
    """EfficientNet-B0 (keras.applications) with the 1->3 channel stem; HCMUS 2020 mel run, SELAB-HCMUS 2021."""
    return build_efficientnet("B0", input_shape, num_tags, duplicate_bands, dropout, imagenet)


@register("efficientnet_b7")
def build_efficientnet_b7(input_shape=(16, None, 1), num_tags=56, duplicate_bands=None, dropout=0.0,
                          imagenet=False):
    """EfficientNet-B7 (keras.applications) on WaveNet features tiled to 32 rows; HCMUS 2020 run 3."""
    return build_efficientnet("B7", input_shape, num_tags, duplicate_bands, dropout, imagenet)
