"""ResNet-34 tagger on 1-channel spectrograms (CP-JKU 2019 run 5; the backbone of UAI-CNRL 2020).

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (the 34-layer basic-block
network, stages [3, 4, 6, 3], 64-128-256-512 channels). Seeds: CP-JKU 2019 run 5 `5_resnet34` (seeds/002_*;
its code, gitlab shreyan/moodwalk, is not public, so its exact configuration is **[UNVERIFIED]**) and UAI-CNRL 2020
(seeds/003_*, B6), which pairs ResNet-34 with self-attention (that variant is `attention_resnet34`).
Keras has no ResNet-34, so it is built here as in torchvision: 7x7 s2 stem with padding 3, 3x3 s2 max pool with
padding 1, basic blocks with a 1x1 s2 conv + BN projection when the shape changes, global average pool.
Differs from the original: one input channel instead of RGB, a sigmoid multi-label head, and `width` scales
every stage's channels (64 by default) and `stage_blocks` the blocks per stage, for small test models.
`imagenet_classes=1000` on 224x224x3 builds the bare torchvision classifier (21.8 M parameters) to check the count.
"""

import keras
from keras import layers

from tfmood.models import register
from tfmood.models.stem import input_layer, tagging_head

STAGE_BLOCKS = (3, 4, 6, 3)


def batch_norm(name):
    return layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name)  # torchvision defaults


def conv_bn(x, filters, kernel, strides, name, relu=True):
    """torchvision-style conv: symmetric padding k//2 (explicit at stride 2, where Keras's "same" pads (0, 1))."""
    padding = "same"
    if kernel > 1 and strides > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = batch_norm(f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def basic_block(x, filters, strides, name):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides, f"{name}_down", relu=False)
    y = conv_bn(x, filters, 3, strides, f"{name}_1")
    y = conv_bn(y, filters, 3, 1, f"{name}_2", relu=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def resnet34_features(x, width=64, stage_blocks=STAGE_BLOCKS, name="resnet34"):
    """The ResNet-34 trunk: `[batch, bands, frames, c]` -> `[batch, bands/32, frames/32, 8*width]`."""
    x = conv_bn(x, width, 7, 2, f"{name}_stem")
    x = layers.ZeroPadding2D(1, name=f"{name}_pool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)
    for stage, blocks in enumerate(stage_blocks):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = basic_block(x, width * 2 ** stage, strides, f"{name}_stage{stage + 1}_block{block + 1}")
    return x


@register("resnet34")
def build_resnet34(input_shape=(96, None, 1), num_tags=56, width=64, dropout=0.0, imagenet_classes=None,
                   stage_blocks=STAGE_BLOCKS):
    """ResNet-34 (basic blocks [3, 4, 6, 3]) on 1-channel spectrograms; CP-JKU 2019 run 5, UAI-CNRL 2020 backbone."""
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer (channels of the first stage), got {width!r}.")
    inputs = input_layer(input_shape)
    if imagenet_classes:  # torchvision's ImageNet classifier, for parameter-count comparisons only
        features = resnet34_features(inputs, width, tuple(stage_blocks))
        pooled = layers.GlobalAveragePooling2D(name="classifier_pool")(features)
        return keras.Model(inputs, layers.Dense(imagenet_classes, name="classifier_fc")(pooled),
                           name="resnet34_imagenet")
    outputs = tagging_head(resnet34_features(inputs, width, tuple(stage_blocks)), num_tags, dropout)
    return keras.Model(inputs, outputs, name="resnet34")
