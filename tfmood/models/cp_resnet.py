"""CP-JKU's receptive-field-regularised ResNet (CP ResNet), the base of their FA-ResNet and Shake-Shake runs.

Koutini, Chowdhury, Haunschmid, Eghbal-zadeh, Widmer, "Emotion and Theme Recognition in Music with
Frequency-Aware RF-Regularized CNNs", MediaEval 2019 (seeds/002_*; systems.md A1, A2). Follows
`kkoutini/cpjku_dcase19 : models/cp_resnet.py`: stem conv k5 s2 with padding 1, three stages of four
BasicBlocks (128/256/512 channels), max pools after blocks 1, 2 and 4 of stage 1, kernels chosen by `rho`,
a 1x1 conv -> BN -> global average pool head (no dense layer) and fixup-style init.
`rho` defaults to 7, the value of cpjku_dcase19's `configs/cp_resnet.json`; its training scripts
(`exp_cp_resnet.py`, `exp_cp_faresnet.py`) default to `--rho 5` and overwrite the config's kernels with it. The
value CP-JKU used at MediaEval is not published.
Differs from the original: a sigmoid on the head for multi-label scores, and by default a non-affine per-band
BatchNorm on the input (`input_norm`) standing in for CP-JKU's per-mel-bin training-set standardisation.
"""

import keras
from keras import layers

from tfmood.models import register
from tfmood.models.layers import WeightedAveragePool2D
from tfmood.models.stem import input_layer

STAGES = 3
BLOCKS_PER_STAGE = 4
STAGE1_POOLS_AFTER = (0, 1, 3)  # 0-based block indices: after blocks 1, 2 and 4


def kernel_schedule(rho: int) -> list:
    """`[(k1 list, k2 list)]` per stage for `rho` (cpjku_dcase19 `get_model_based_on_rho`; 3x3 or 1x1 kernels)."""
    e = int(rho) - 7
    small = lambda cond: 3 - 2 * int(cond)  # noqa: E731  (3 unless the condition shrinks it to 1)
    large = lambda cond: 1 + 2 * int(cond)  # noqa: E731  (1 unless the condition grows it to 3)
    return [
        ([3, small(-e > 6), small(-e > 4), small(-e > 2)], [1, small(-e > 5), small(-e > 3), small(-e > 1)]),
        ([small(-e > 0), large(e > 1), large(e > 3), large(e > 5)], [large(e > 0), large(e > 2), large(e > 4),
                                                                     large(e > 6)]),
        ([large(e > 7), large(e > 9), large(e > 11), large(e > 13)], [large(e > 8), large(e > 10), large(e > 12),
                                                                      large(e > 14)]),
    ]


def max_receptive_field(rho: int) -> int:
    """Geometric receptive field of the last layer in input pixels: 87 for rho 5, 135 for rho 7.

    Not the figure CP-JKU quote: their `utils_funcs.get_maxrf` counts each pool as a stride change on the
    preceding convolution and leaves out the pools' own extent, which gives 81 (rho 5) and 145 (rho 7).
    """
    field, jump = 1 + (5 - 1), 2  # the k5 s2 stem
    for stage, (k1s, k2s) in enumerate(kernel_schedule(rho)):
        for block, (k1, k2) in enumerate(zip(k1s, k2s)):
            field += (k1 - 1) * jump + (k2 - 1) * jump
            if stage == 0 and block in STAGE1_POOLS_AFTER:
                field += jump
                jump *= 2
    return field


def batch_norm(name, **kwargs):
    """PyTorch BatchNorm2d defaults (eps 1e-5, momentum 0.1 == Keras 0.9), as in the original code."""
    return layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name, **kwargs)


def fixup_initializers(num_blocks: int) -> dict:
    """A1's init: conv1 ~ N(0, L^-1/2 sqrt(2/(k k out))), conv2 = 0, shortcut ~ N(0, sqrt(2/(k k out)))."""
    return {
        "conv1": keras.initializers.VarianceScaling(2.0 / num_blocks, "fan_out", "untruncated_normal"),
        "conv2": "zeros",
        "shortcut": keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal"),
        "kaiming": keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal"),
    }


def conv(filters, kernel, init, name):
    return layers.Conv2D(filters, kernel, padding="same", use_bias=False, kernel_initializer=init, name=name)


def residual_branch(x, filters, k1, k2, init, name, coordinate=None):
    """conv1 -> BN -> ReLU -> conv2 -> BN; `coordinate(x)` (FA-ResNet) is applied before each conv when given."""
    prepare = coordinate or (lambda t, suffix: t)
    y = conv(filters, k1, init["conv1"], f"{name}_conv1")(prepare(x, f"{name}_coord1"))
    y = layers.ReLU(name=f"{name}_relu1")(batch_norm(f"{name}_bn1")(y))
    y = conv(filters, k2, init["conv2"], f"{name}_conv2")(prepare(y, f"{name}_coord2"))
    return batch_norm(f"{name}_bn2")(y)


def basic_block(x, filters, k1, k2, init, name):
    """A1's BasicBlock: branch + (identity or 1x1 conv + BN) shortcut -> ReLU."""
    return finish_block(x, residual_branch(x, filters, k1, k2, init, name), filters, init, name)


def finish_block(x, branch, filters, init, name):
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, use_bias=False, kernel_initializer=init["shortcut"],
                                 name=f"{name}_shortcut")(x)
        shortcut = batch_norm(f"{name}_shortcut_bn")(shortcut)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([branch, shortcut]))


def cp_head(x, num_tags, attention_avg, name="head"):
    """1x1 conv to the tags -> BN -> global average (or A1's attention-weighted average) -> sigmoid."""
    scores = batch_norm(f"{name}_bn")(layers.Conv2D(num_tags, 1, use_bias=False, kernel_initializer="zeros",
                                                    name=f"{name}_conv")(x))
    if attention_avg:
        weights = layers.Conv2D(num_tags, 1, activation="sigmoid", name=f"{name}_attention")(x)
        pooled = WeightedAveragePool2D(name=f"{name}_pool")([scores, weights])
    else:
        pooled = layers.GlobalAveragePooling2D(name=f"{name}_pool")(scores)
    return layers.Activation("sigmoid", dtype="float32", name=f"{name}_scores")(pooled)


def blocks_per_stage(depth):
    """cpjku's `depth` config: (depth - 2) / 6 BasicBlocks per stage (26 -> 4, the published network)."""
    if not isinstance(depth, int) or (depth - 2) % 6 or not 8 <= depth <= 26:
        raise ValueError(f"depth must be one of 8, 14, 20, 26 ((depth - 2) / 6 blocks per stage), got {depth!r}.")
    return (depth - 2) // 6


def build_cp_network(input_shape, num_tags, block, rho, base_channels, attention_avg, input_norm, model_name,
                     depth=26):
    """Stem, the rho-scheduled stages of `block(x, filters, k1, k2, init, name)`, and the CP head.

    `depth` < 26 keeps the first (depth - 2) / 6 blocks of each stage (and their kernels): for small test models.
    """
    inputs = input_layer(input_shape)
    per_stage = blocks_per_stage(depth)
    init = fixup_initializers(STAGES * per_stage)
    x = inputs
    if input_norm:
        x = layers.BatchNormalization(axis=1, center=False, scale=False, name="input_norm")(x)
    x = layers.ZeroPadding2D(1, name="stem_pad")(x)  # padding 1, not "same": 256 bins -> 127
    x = layers.Conv2D(base_channels, 5, strides=2, use_bias=False, kernel_initializer=init["kaiming"],
                      name="stem_conv")(x)
    x = layers.ReLU(name="stem_relu")(batch_norm("stem_bn")(x))
    for stage, (k1s, k2s) in enumerate(kernel_schedule(rho)):
        for index, (k1, k2) in enumerate(zip(k1s[:per_stage], k2s[:per_stage])):
            x = block(x, base_channels * 2 ** stage, k1, k2, init, f"stage{stage + 1}_block{index + 1}")
            if stage == 0 and index in STAGE1_POOLS_AFTER:
                x = layers.MaxPooling2D(2, name=f"stage1_pool{index + 1}")(x)
    return keras.Model(inputs, cp_head(x, num_tags, attention_avg), name=model_name)


def check_rho(rho):
    if not isinstance(rho, int) or not 0 <= rho <= 15:
        raise ValueError(f"rho must be an integer in 0..15 (the receptive-field knob), got {rho!r}.")
    return rho


@register("cp_resnet")
def build_cp_resnet(input_shape=(256, None, 1), num_tags=56, rho=7, base_channels=128, attention_avg=False,
                    input_norm=True, depth=26):
    """CP-JKU's receptive-field-regularised CP ResNet (rho sets the kernels); MediaEval 2019 CP-JKU base model."""
    return build_cp_network(input_shape, num_tags, basic_block, check_rho(rho), base_channels, attention_avg,
                            input_norm, "cp_resnet", depth)
