"""Building blocks shared by the rebuilt timm mobile networks (ReXNet, MixNet, timm's EfficientNet): PyTorch-style
padding, squeeze-and-excitation, MixConv, stochastic depth and timm's block strings. Conv layers carry no bias (a
BatchNorm follows), as in timm."""

import math
import re

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


def timm_style_tagger(name, features_fn, input_shape, num_tags, dropout, imagenet_classes, weights=None):
    """A timm-family network as a tagger (bw2col stem -> features -> tagging head), or, with
    `imagenet_classes`, timm's bare ImageNet classifier on RGB-like input (parameter counts, weight ports).

    `weights`: a backbone file written by `tools/port_timm.py` (timm's ImageNet weights); the stem and the
    tagging head keep their fresh initialisation, as SELAB's `create_model(pretrained=True, num_classes=56)`.
    """
    inputs = input_layer(input_shape)
    if imagenet_classes:
        logits = imagenet_classifier(features_fn(inputs), imagenet_classes, dropout)
        model = keras.Model(inputs, logits, name=f"{name}_imagenet")
    else:
        model = keras.Model(inputs, tagging_head(features_fn(bw2col(inputs)), num_tags, dropout), name=name)
    if weights:
        from tfmood.models.timm_port import load_backbone  # torch-free part of the port
        load_backbone(model, weights)
    return model

# --- timm's block strings (`timm/models/_efficientnet_builder.py` conventions, decoded by our own parser) ---------
# `ds` = depthwise-separable block, `ir` = inverted residual (1x1 expand -> depthwise -> SE -> 1x1 project);
# `k3.5.7` = MixConv depthwise with one channel group per kernel size; `a1.1` / `p1.1` = expansion / projection
# pointwise convs split into two groups; `e` expansion, `c` channels, `s` stride, `r` repeats, `se0.25` = SE
# reducing to that share of the block's *input* channels (timm divides the ratio by the expansion and applies it to
# the expanded channels), `nsw` = swish for that block; identity skip when stride 1 and channels match.

def make_divisible(value, divisor=8):
    """timm's channel rounding: nearest multiple of `divisor`, never more than 10% below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def parse_block(text, default_act="relu"):
    """One timm block string -> dict(type, repeats, kernels, expand_kernels, project_kernels, stride, ...)."""
    kind, *tokens = text.split("_")
    options = {}
    for token in tokens:
        key, value = re.match(r"([a-z]+)([\d.]*)", token).groups()
        options[key] = value
    kernels = lambda key: [int(k) for k in options[key].split(".")] if key in options else [1]  # noqa: E731
    return dict(type=kind, repeats=int(options["r"]), kernels=kernels("k"), expand_kernels=kernels("a"),
                project_kernels=kernels("p"), stride=int(options["s"]), expansion=float(options["e"]),
                channels=int(options["c"]), se=float(options.get("se", 0) or 0),
                act="swish" if "nsw" in options else default_act)


def drop_path(x, rate, name):
    """Stochastic depth on a residual branch: drop it for whole samples, scale the kept ones by 1 / (1 - rate)
    (timm's `DropPath`, keras.applications' per-sample Dropout); the identity at inference."""
    return layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=name)(x) if rate else x


def timm_block(x, spec, stride, channels, drop_rate, name):
    """One `ds` / `ir` block of timm's EfficientNet family (MixNet and EfficientNet share it)."""
    in_channels, act = x.shape[-1], spec["act"]
    y = x
    if spec["type"] == "ir":
        mid = make_divisible(in_channels * spec["expansion"])
        y = mixed_conv(y, mid, spec["expand_kernels"], name=f"{name}_expand")
        y = activation(act, f"{name}_expand_act")(batch_norm(f"{name}_expand_bn")(y))
    y = mixed_conv(y, y.shape[-1], spec["kernels"], stride, depthwise=True, name=f"{name}_dw")
    y = activation(act, f"{name}_dw_act")(batch_norm(f"{name}_dw_bn")(y))
    if spec["se"]:
        y = squeeze_excite(y, max(1, round(in_channels * spec["se"])), act, f"{name}_se")
    y = batch_norm(f"{name}_project_bn")(mixed_conv(y, channels, spec["project_kernels"], name=f"{name}_project"))
    if stride == 1 and in_channels == channels:
        y = layers.Add(name=f"{name}_add")([drop_path(y, drop_rate, f"{name}_drop_path"), x])
    return y


def timm_block_features(x, arch, stem, head, act, width_mult=1.0, depth_mult=1.0, drop_path_rate=0.0,
                        name="net", head_mult=None):
    """stem 3x3 s2 conv (BN, act) -> the blocks of `arch` (block strings) -> 1x1 head conv (BN, act).

    `depth_mult` scales each block string's repeats (ceil; timm scales per stage, identical at 1.0); the
    stochastic-depth rate grows linearly with the block index from 0 to `drop_path_rate` (timm's rule).
    `head_mult` scales the head conv instead of `width_mult` (torchvision's MobileNetV2 never narrows its 1280).
    """
    specs = [parse_block(text, act) for text in arch]
    repeats = [max(1, math.ceil(spec["repeats"] * depth_mult)) for spec in specs]
    total = sum(repeats)
    x = conv_bn(x, make_divisible(stem * width_mult), 3, 2, act, f"{name}_stem")
    index = 0
    for spec, count in zip(specs, repeats):
        for repeat in range(count):
            x = timm_block(x, spec, spec["stride"] if repeat == 0 else 1, make_divisible(spec["channels"] * width_mult),
                           drop_path_rate * index / total, f"{name}_block{index + 1}")
            index += 1
    head_mult = width_mult if head_mult is None else head_mult
    return conv_bn(x, make_divisible(head * head_mult), 1, 1, act, f"{name}_head")
