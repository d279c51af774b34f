"""MobileNetV2 tagger (HCMUS 2020 run 1 on WaveNet features; AMLAG 2019's submission 1 on mel-spectrograms).

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
Seeds: HCMUS 2020 (`seeds/000_*`), AMLAG 2019 submission 1. Backbone is `keras.applications.MobileNetV2`
with `include_top=False`; the seeds' learned 1->3 channel stem replaces RGB input, and a global-average
pooled sigmoid head gives the 56 tag scores. Differs from the seeds: ImageNet weights are opt-in
(`imagenet=True`) instead of always loaded; `alpha` < 1 gives the narrow variants used in tests.
"""

import keras

from tfmood.models import register
from tfmood.models.applications import variable_length_backbone
from tfmood.models.stem import bw2col, input_layer, tagging_head


@register("mobilenetv2")
def build_mobilenetv2(input_shape=(96, None, 1), num_tags=56, alpha=1.0, dropout=0.0, imagenet=False):
    """MobileNetV2 (keras.applications) with the seeds' 1->3 channel stem; HCMUS 2020 / AMLAG 2019."""
    inputs = input_layer(input_shape)
    backbone = variable_length_backbone("MobileNetV2", input_shape[0], imagenet, alpha=alpha)
    outputs = tagging_head(backbone(bw2col(inputs)), num_tags, dropout)
    return keras.Model(inputs, outputs, name="mobilenetv2")
