"""MobileNetV2 tagger (HCMUS 2020 run 1 on WaveNet features; AMLAG 2019's submission 1 on mel-spectrograms).

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
Seeds: HCMUS 2020 (`seeds/000_*`), AMLAG 2019 submission 1. The seeds' learned 1->3 channel stem (`bw2col`)
replaces RGB input, and a global-average pooled sigmoid head gives the 56 tag scores.

Two implementations of the backbone; `source` picks one (a registry, `SOURCES`), as for EfficientNet:
- `"keras"` (default): `keras.applications.MobileNetV2` (include_top=False) on a free time axis: TensorFlow-style
  stride-2 padding (by the parity of the input), BN eps 1e-3, Keras' ImageNet weights (`imagenet=True`).
- `"torchvision"` (what AMLAG's code runs; HCMUS's PyTorch code most likely too): torchvision's
  `mobilenet_v2(width_mult=alpha)` features, rebuilt from MobileNetV2's stage table as block strings with the
  zoo's mobile blocks (`mobile_blocks.timm_block_features`): symmetric k//2 padding, BN eps 1e-5, ReLU6, channels
  rounded by torchvision's `_make_divisible` (= timm's `make_divisible`), the last conv at 1280 x max(1, alpha).
  Matches torchvision 0.29 with ported weights (tests/test_differential_torchvision.py). torchvision's ImageNet
  weights are PyTorch; `imagenet=True` copies keras.applications' ImageNet MobileNetV2 (same alpha, same layer
  shapes) onto it instead, each BN's moving variance raised by 1e-3 - 1e-5 so that it computes the same affine map
  at eps 1e-5: an ImageNet initialisation with the torchvision network's padding, not torchvision's weights.
Options: `alpha` < 1 gives the narrow variants used in tests (torchvision's `width_mult`); `duplicate_bands`
stacks copies of the input along frequency, as HCMUS's `np.tile(features, (2, 1))` does for 16-band WaveNet
features (keras.applications' MobileNetV2 refuses inputs under 32 rows). Head `dropout` defaults to 0 (HCMUS);
AMLAG 2019 submission 1 has 0.2 before its linear layer (`dropout=0.2`, the amlag2019-mobilenetv2 recipe), as
torchvision's classifier. `imagenet_classes` builds the bare ImageNet classifier (pool, dropout, dense logits) on
RGB-like input instead of the tagger: parameter counts and weight ports. ImageNet weights are opt-in.
"""

import keras
from keras import layers

from tfmood.models import register
from tfmood.models.applications import variable_length_backbone
from tfmood.models.mobile_blocks import imagenet_classifier, timm_block_features
from tfmood.models.stem import bw2col, input_layer, tagging_head
from tfmood.registry import Registry

SOURCES = Registry("MobileNetV2 source")

# torchvision's `inverted_residual_setting` (t, c, n, s) as block strings: t=1 is the block without expansion.
TORCHVISION_ARCH = ("ds_r1_k3_s1_e1_c16", "ir_r2_k3_s2_e6_c24", "ir_r3_k3_s2_e6_c32", "ir_r4_k3_s2_e6_c64",
                    "ir_r3_k3_s1_e6_c96", "ir_r3_k3_s2_e6_c160", "ir_r1_k3_s1_e6_c320")
TORCHVISION_STEM, TORCHVISION_HEAD = 32, 1280
PREFIX = "mobilenetv2"  # layer names of the torchvision rebuild: mobilenetv2_stem_conv, mobilenetv2_block3_dw, ...
KERAS_BN_EPSILON, TORCH_BN_EPSILON = 1e-3, 1e-5


@SOURCES.register("keras")
def keras_backbone(bands, alpha, imagenet):
    return variable_length_backbone("MobileNetV2", bands, imagenet, alpha=alpha)


@SOURCES.register("torchvision")
def torchvision_backbone(bands, alpha, imagenet):
    rgb = keras.Input((bands, None, 3))
    features = timm_block_features(rgb, TORCHVISION_ARCH, TORCHVISION_STEM, TORCHVISION_HEAD, "relu6",
                                   width_mult=alpha, head_mult=max(1.0, alpha), name=PREFIX)
    backbone = keras.Model(rgb, features, name="mobilenetv2_torchvision")
    if imagenet:
        copy_keras_weights(keras_backbone(bands, alpha, True), backbone)
    return backbone


def keras_layer_names(blocks=17):
    """{keras.applications MobileNetV2 layer: torchvision rebuild layer}; Keras counts blocks from 0
    (`expanded_conv`, then `block_1` .. `block_16`), the rebuild from 1."""
    names = {"Conv1": f"{PREFIX}_stem_conv", "bn_Conv1": f"{PREFIX}_stem_bn", "Conv_1": f"{PREFIX}_head_conv",
             "Conv_1_bn": f"{PREFIX}_head_bn"}
    for index in range(blocks):
        keras_block, block = ("expanded_conv" if index == 0 else f"block_{index}"), f"{PREFIX}_block{index + 1}"
        parts = {"depthwise": "dw", "depthwise_BN": "dw_bn", "project": "project", "project_BN": "project_bn"}
        if index:
            parts.update(expand="expand", expand_BN="expand_bn")
        names.update({f"{keras_block}_{part}": f"{block}_{mine}" for part, mine in parts.items()})
    return names


def copy_keras_weights(source, target):
    """keras.applications' MobileNetV2 weights -> the torchvision rebuild (same alpha). Batch norms keep their
    inference map across the epsilon change: moving variance + 1e-3 - 1e-5."""
    names = keras_layer_names()
    weighted = [layer.name for layer in source.layers if layer.weights]
    if sorted(weighted) != sorted(names):
        raise ValueError(f"{source.name}: unexpected MobileNetV2 layers {sorted(set(weighted) ^ set(names))[:3]}")
    for keras_name, name in names.items():
        values = source.get_layer(keras_name).get_weights()
        if isinstance(target.get_layer(name), layers.BatchNormalization):
            gamma, beta, mean, variance = values
            values = [gamma, beta, mean, variance + (KERAS_BN_EPSILON - TORCH_BN_EPSILON)]
        target.get_layer(name).set_weights(values)


def mobilenetv2_backbone(source, bands, alpha=1.0, imagenet=False):
    """The MobileNetV2 feature extractor of `source` on `[bands, None, 3]` (1280 x max(1, alpha) channels, /32)."""
    return SOURCES.get(source)(bands, alpha, imagenet)


@register("mobilenetv2")
def build_mobilenetv2(input_shape=(96, None, 1), num_tags=56, alpha=1.0, dropout=0.0, imagenet=False,
                      duplicate_bands=1, source="keras", imagenet_classes=None):
    """MobileNetV2 (keras.applications or torchvision-style) with the seeds' 1->3 channel stem; HCMUS 2020 /
    AMLAG 2019."""
    if not isinstance(duplicate_bands, int) or duplicate_bands < 1:
        raise ValueError(f"duplicate_bands must be a positive integer (2 tiles 16 WaveNet bands to 32 rows), "
                         f"got {duplicate_bands!r}.")
    inputs = input_layer(input_shape)
    x = inputs
    if duplicate_bands > 1:
        x = layers.Concatenate(axis=1, name="duplicate_bands")([inputs] * duplicate_bands)
    backbone = mobilenetv2_backbone(source, input_shape[0] * duplicate_bands if input_shape[0] else None, alpha,
                                    imagenet)
    if imagenet_classes:  # the bare ImageNet classifier on RGB-like input (torchvision's: dropout + linear)
        return keras.Model(inputs, imagenet_classifier(backbone(x), imagenet_classes, dropout),
                           name="mobilenetv2_imagenet")
    outputs = tagging_head(backbone(bw2col(x)), num_tags, dropout)
    return keras.Model(inputs, outputs, name="mobilenetv2")
