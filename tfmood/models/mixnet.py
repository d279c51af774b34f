"""MixNet-S tagger (SELAB-HCMUS 2021 names it as a co-teaching backbone), rebuilt in Keras.

Tan & Le, "MixConv: Mixed Depthwise Convolutional Kernels", BMVC 2019. Seed: SELAB-HCMUS 2021 (seeds/001_*,
systems.md C2/C4; which backbone pair the code ran is [UNVERIFIED]). Architecture from the timm block strings of
`_gen_mixnet_s` (`huggingface/pytorch-image-models : timm/models/efficientnet.py`; decoded here by our own
parser): stem 3x3 s2 to 16 (BN, ReLU); `ds` = depthwise-separable block, `ir` = inverted residual (1x1 expand
-> depthwise -> SE -> 1x1 project); `k3.5.7` = MixConv depthwise with one channel group per kernel size;
`a1.1` / `p1.1` = expansion / projection pointwise convs split into two groups; `e` expansion, `c` channels,
`s` stride, `r` repeats, `se0.5` = SE reducing to 0.5 x the block's *input* channels (timm divides the ratio by
the expansion), `nsw` = swish for that block (ReLU otherwise); identity skip when stride 1 and channels match;
head 1x1 conv to 1536 (BN, ReLU). Parameter count checked against timm in docs/models.md (`imagenet_classes`).
Differs from the seed: no ImageNet weights; sigmoid dense head; `width_mult` scales channels (timm's
round-to-8 rule) and `depth_mult` each block string's repeats (ceil; timm scales per stage, identical at 1.0),
for small test models.
"""

import math
import re

from keras import layers

from tfmood.models import register
from tfmood.models.mobile_blocks import (activation, batch_norm, conv_bn, timm_style_tagger, mixed_conv,
                                         squeeze_excite)

ARCH = (
    "ds_r1_k3_s1_e1_c16",
    "ir_r1_k3_a1.1_p1.1_s2_e6_c24", "ir_r1_k3_a1.1_p1.1_s1_e3_c24",
    "ir_r1_k3.5.7_s2_e6_c40_se0.5_nsw", "ir_r3_k3.5_a1.1_p1.1_s1_e6_c40_se0.5_nsw",
    "ir_r1_k3.5.7_p1.1_s2_e6_c80_se0.25_nsw", "ir_r2_k3.5_p1.1_s1_e6_c80_se0.25_nsw",
    "ir_r1_k3.5.7_a1.1_p1.1_s1_e6_c120_se0.5_nsw", "ir_r2_k3.5.7.9_a1.1_p1.1_s1_e3_c120_se0.5_nsw",
    "ir_r1_k3.5.7.9.11_s2_e6_c200_se0.5_nsw", "ir_r2_k3.5.7.9_p1.1_s1_e6_c200_se0.5_nsw",
)
STEM, HEAD = 16, 1536


def make_divisible(value, divisor=8):
    """timm's channel rounding: nearest multiple of `divisor`, never more than 10% below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def parse_block(text):
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
                act="swish" if "nsw" in options else "relu")


def mix_block(x, spec, stride, channels, name):
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
        y = layers.Add(name=f"{name}_add")([y, x])
    return y


def mixnet_features(x, width_mult=1.0, depth_mult=1.0, name="mixnet"):
    x = conv_bn(x, make_divisible(STEM * width_mult), 3, 2, "relu", f"{name}_stem")
    index = 0
    for text in ARCH:
        spec = parse_block(text)
        for repeat in range(max(1, math.ceil(spec["repeats"] * depth_mult))):
            index += 1
            x = mix_block(x, spec, spec["stride"] if repeat == 0 else 1,
                          make_divisible(spec["channels"] * width_mult), f"{name}_block{index}")
    return conv_bn(x, make_divisible(HEAD * width_mult), 1, 1, "relu", f"{name}_head")


@register("mixnet_s")
def build_mixnet_s(input_shape=(96, None, 1), num_tags=56, width_mult=1.0, depth_mult=1.0, dropout=0.2,
                   imagenet_classes=None):
    """MixNet-S (MixConv) rebuilt from timm's block strings with the 1->3 channel stem; SELAB-HCMUS 2021."""
    return timm_style_tagger("mixnet_s", mixnet_features, input_shape, num_tags, width_mult, depth_mult, dropout,
                             imagenet_classes)
