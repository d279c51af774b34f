"""Building blocks shared by the rebuilt timm mobile networks (ReXNet, MixNet): PyTorch-style padding,
squeeze-and-excitation and MixConv. Conv layers carry no bias (a BatchNorm follows), as in timm."""

import keras
from keras import layers

from tfmood.models.stem import bw2col, input_layer, tagging_head

from tfmood.models.layers import ChannelSplit


def batch_norm(name):
    return layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name)  # PyTorch defaults, as timm


def activation(kind, name):
    """`relu`, `relu6` or `swish` (timm's SiLU)."""
    return layers.Activation("relu6" if kind == "relu6" else kind, name=name)


def conv(x, filters, kernel, strides=1, name="conv", depthwise=False):
    """Conv (or depthwise conv) with PyTorch's symmetric padding k//2, correct for any number of frames.

    At stride 1, "same" *is* symmetric for odd kernels; only stride 2 needs an explicit ZeroPadding2D
    (Keras's "same" would pad (0, 1) there).
    """
    padding = "same"
    if kernel > 1 and strides > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    if depthwise:
        return layers.DepthwiseConv2D(kernel, strides=strides, padding=padding, use_bias=False, name=name)(x)
    return layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=name)(x)


def conv_bn(x, filters, kernel, strides, act, name):
    x = batch_norm(f"{name}_bn")(conv(x, filters, kernel, strides, name=f"{name}_conv"))
    return activation(act, f"{name}_act")(x) if act else x


def split_sizes(channels, groups):
    """timm's `_split_channels`: equal parts, the remainder going to the first."""
    sizes = [channels // groups] * groups
    sizes[0] += channels - sum(sizes)
    return sizes


def mixed_conv(x, filters, kernels, strides=1, depthwise=False, name="mixconv"):
    """MixConv (Tan & Le 2019): channel groups convolved with different kernel sizes, then concatenated.

    `kernels` is one size per group; pointwise convs with several groups (timm's `a1.1` / `p1.1`) are the
    same op with kernel 1 in each group. One group is a plain (depthwise) conv.
    """
    if len(kernels) == 1:
        return conv(x, filters, kernels[0], strides, name=name, depthwise=depthwise)
    parts = ChannelSplit(split_sizes(x.shape[-1], len(kernels)), name=f"{name}_split")(x)
    out_sizes = split_sizes(filters, len(kernels))
    outs = [conv(part, size, k, strides, name=f"{name}_g{i}", depthwise=depthwise)
            for i, (part, size, k) in enumerate(zip(parts, out_sizes, kernels))]
    return layers.Concatenate(name=f"{name}_concat")(outs)


def squeeze_excite(x, reduced, act, name, norm=False):
    """SE: global average -> 1x1 conv (bias) -> [BN] -> act -> 1x1 conv (bias) -> sigmoid gate on x."""
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = layers.Conv2D(reduced, 1, name=f"{name}_reduce")(s)
    if norm:
        s = batch_norm(f"{name}_bn")(s)
    s = activation(act, f"{name}_act")(s)
    s = layers.Conv2D(x.shape[-1], 1, activation="sigmoid", name=f"{name}_expand")(s)
    return layers.Multiply(name=f"{name}_gate")([x, s])


def imagenet_classifier(x, num_classes, dropout, name="classifier"):
    """The bare ImageNet head (pool -> dropout -> dense logits), used only to count parameters against timm."""
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.Dense(num_classes, name=f"{name}_fc")(x)


def timm_style_tagger(name, features_fn, input_shape, num_tags, width_mult, depth_mult, dropout, imagenet_classes):
    """A timm-family network as a tagger (bw2col stem -> features -> tagging head), or, with
    `imagenet_classes`, timm's bare ImageNet classifier on RGB-like input, only to compare parameter counts."""
    inputs = input_layer(input_shape)
    if imagenet_classes:
        logits = imagenet_classifier(features_fn(inputs, width_mult, depth_mult), imagenet_classes, dropout)
        return keras.Model(inputs, logits, name=f"{name}_imagenet")
    features = features_fn(bw2col(inputs), width_mult, depth_mult)
    return keras.Model(inputs, tagging_head(features, num_tags, dropout), name=name)
