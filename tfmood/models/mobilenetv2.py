"""MobileNetV2 tagger (HCMUS 2020 run 1 on WaveNet features; AMLAG 2019's submission 1 on mel-spectrograms).

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
Seeds: HCMUS 2020 (`seeds/000_*`), AMLAG 2019 submission 1. Backbone is `keras.applications.MobileNetV2`
with `include_top=False`; the seeds' learned 1->3 channel stem replaces RGB input, and a global-average
pooled sigmoid head gives the 56 tag scores. Differs from the seeds: ImageNet weights are opt-in
(`imagenet=True`) instead of always loaded; `alpha` < 1 gives the narrow variants used in tests;
`duplicate_bands` stacks copies of the input along frequency, as HCMUS's `np.tile(features, (2, 1))` does for
16-band WaveNet features (keras.applications' MobileNetV2 refuses inputs under 32 rows). Head `dropout` defaults
to 0 (HCMUS); AMLAG 2019 submission 1 has 0.2 before its linear layer (`dropout=0.2`, the amlag2019-mobilenetv2
recipe). The backbone is keras.applications', not the seeds' torchvision MobileNetV2 (stride-2 padding TF-style,
BN eps 1e-3, Keras' ImageNet weights): no differential test matches it to torchvision.
"""

import keras
from keras import layers

from tfmood.models import register
from tfmood.models.applications import variable_length_backbone
from tfmood.models.stem import bw2col, input_layer, tagging_head


@register("mobilenetv2")
def build_mobilenetv2(input_shape=(96, None, 1), num_tags=56, alpha=1.0, dropout=0.0, imagenet=False,
                      duplicate_bands=1):
    """MobileNetV2 (keras.applications) with the seeds' 1->3 channel stem; HCMUS 2020 / AMLAG 2019."""
    if not isinstance(duplicate_bands, int) or duplicate_bands < 1:
        raise ValueError(f"duplicate_bands must be a positive integer (2 tiles 16 WaveNet bands to 32 rows), "
                         f"got {duplicate_bands!r}.")
    inputs = input_layer(input_shape)
    x = inputs
    if duplicate_bands > 1:
        x = layers.Concatenate(axis=1, name="duplicate_bands")([inputs] * duplicate_bands)
    backbone = variable_length_backbone("MobileNetV2", input_shape[0] * duplicate_bands, imagenet, alpha=alpha)
    outputs = tagging_head(backbone(bw2col(x)), num_tags, dropout)
    return keras.Model(inputs, outputs, name="mobilenetv2")
