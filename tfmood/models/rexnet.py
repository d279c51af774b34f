"""ReXNet-1.0 tagger (SELAB-HCMUS 2021's co-teaching partner network), rebuilt in Keras.

Han, Yun, Heo, Yoo, "Rethinking Channel Dimensions for Efficient Model Design" (ReXNet), CVPR 2021.
Seed: SELAB-HCMUS 2021 (seeds/001_*, systems.md C2/C4), which used `timm.create_model("rexnet_100")` behind its
1->3 channel stem. Architecture as in `huggingface/pytorch-image-models : timm/models/rexnet.py` (written anew
here): 3x3 s2 stem to 32 channels (BN, SiLU); 16 LinearBottlenecks (layers [1,2,2,3,3,5], strides
[1,2,2,2,1,2], expansion 1 then 6, channels growing linearly 16 -> 185): 1x1 expand + BN + SiLU -> 3x3 depthwise
+ BN -> SE 1/12 with BN (from the 4th block on) -> ReLU6 -> 1x1 project + BN, with the input added to the first
in-channels outputs when stride is 1; 1x1 conv to 1280 + BN + SiLU. Parameter count checked against timm in
docs/models.md (`imagenet_classes=1000` builds the bare ImageNet classifier for that).
Head dropout 0.2 = timm's `rexnet_100` default (SELAB's `create_model` passes none). Matches timm 1.0.31 `rexnet_100`
with ported weights (tests/test_differential_timm.py).
Differs from the seed: ImageNet weights only through `weights=` (a file from `tools/port_timm.py rexnet_100`); the
seed's logits + sigmoid are one sigmoid dense layer; `width_mult` / `depth_mult` < 1 follow timm's rules (small
test models).
"""

import functools
import math

from keras import layers

from tfmood.models import register
from tfmood.models.layers import ChannelSplit
from tfmood.models.mobile_blocks import activation, batch_norm, conv, conv_bn, timm_style_tagger, squeeze_excite

LAYERS = (1, 2, 2, 3, 3, 5)
STRIDES = (1, 2, 2, 2, 1, 2)


def block_config(width_mult=1.0, depth_mult=1.0, initial=16, final=180, se_ratio=1 / 12):
    """`[(out_channels, expansion, stride, se_ratio)]` for the 16 blocks, timm's `_block_cfg` rule."""
    stage_layers = [math.ceil(n * depth_mult) for n in LAYERS]
    strides = [s for n, first in zip(stage_layers, STRIDES) for s in [first] + [1] * (n - 1)]
    count = sum(stage_layers)
    expansions = [1] * stage_layers[0] + [6] * (count - stage_layers[0])
    se = [0.0] * (stage_layers[0] + stage_layers[1]) + [se_ratio] * (count - stage_layers[0] - stage_layers[1])
    base = initial / width_mult if width_mult < 1.0 else initial
    channels = []
    for _ in range(count):
        channels.append(max(1, round(base * width_mult)))
        base += final / count
    return list(zip(channels, expansions, strides, se))


def linear_bottleneck(x, out_channels, expansion, stride, se_ratio, name):
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = conv_bn(y, round(in_channels * expansion), 1, 1, "swish", f"{name}_expand")
    y = batch_norm(f"{name}_dw_bn")(conv(y, None, 3, stride, name=f"{name}_dw", depthwise=True))
    if se_ratio:
        y = squeeze_excite(y, max(1, int(y.shape[-1] * se_ratio)), "relu", f"{name}_se", norm=True)
    y = activation("relu6", f"{name}_dw_act")(y)
    y = conv_bn(y, out_channels, 1, 1, None, f"{name}_project")
    if stride != 1 or in_channels > out_channels:
        return y
    if in_channels == out_channels:
        return layers.Add(name=f"{name}_add")([y, x])
    head, tail = ChannelSplit([in_channels, out_channels - in_channels], name=f"{name}_split")(y)
    return layers.Concatenate(name=f"{name}_merge")([layers.Add(name=f"{name}_add")([head, x]), tail])


def rexnet_features(x, width_mult=1.0, depth_mult=1.0, name="rexnet"):
    stem = max(1, round((32 / width_mult if width_mult < 1.0 else 32) * width_mult))
    x = conv_bn(x, stem, 3, 2, "swish", f"{name}_stem")
    for index, (channels, expansion, stride, se_ratio) in enumerate(block_config(width_mult, depth_mult)):
        x = linear_bottleneck(x, channels, expansion, stride, se_ratio, f"{name}_block{index + 1}")
    return conv_bn(x, max(1, int(1280 * width_mult + 0.5)), 1, 1, "swish", f"{name}_head")


@register("rexnet_100")
def build_rexnet_100(input_shape=(96, None, 1), num_tags=56, width_mult=1.0, depth_mult=1.0, dropout=0.2,
                     imagenet_classes=None, weights=None):
    """ReXNet-1.0 rebuilt from timm's spec with the 1->3 channel stem; SELAB-HCMUS 2021 co-teaching."""
    features = functools.partial(rexnet_features, width_mult=width_mult, depth_mult=depth_mult)
    return timm_style_tagger("rexnet_100", features, input_shape, num_tags, dropout, imagenet_classes, weights)
