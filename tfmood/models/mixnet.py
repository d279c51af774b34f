"""MixNet-S tagger (SELAB-HCMUS 2021 names it as a co-teaching backbone), rebuilt in Keras.

Tan & Le, "MixConv: Mixed Depthwise Convolutional Kernels", BMVC 2019. Seed: SELAB-HCMUS 2021 (seeds/001_*,
systems.md C2/C4; which backbone pair the code ran is [UNVERIFIED]). Architecture from the timm block strings of
`_gen_mixnet_s` (`huggingface/pytorch-image-models : timm/models/efficientnet.py`; decoded by our own parser in
`mobile_blocks`, which documents the notation): stem 3x3 s2 to 16 (BN, ReLU); ReLU blocks unless marked `nsw`
(swish); head 1x1 conv to 1536 (BN, ReLU). Matches timm 1.0.31 `mixnet_s` with ported weights
(tests/test_differential_timm.py); parameter count in docs/models.md (`imagenet_classes`).
Head dropout defaults to 0, as timm's `mixnet_s` (`create_model` without `drop_rate`, as SELAB called it).
Differs from the seed: sigmoid dense head; ImageNet weights only through `weights=` (a file from
`tools/port_timm.py mixnet_s`); `width_mult` scales channels (timm's round-to-8 rule) and `depth_mult` each block
string's repeats (ceil; timm scales per stage, identical at 1.0), for small test models.
"""

import functools

from tfmood.models import register
from tfmood.models.mobile_blocks import parse_block, timm_block_features, timm_style_tagger  # noqa: F401

ARCH = (
    "ds_r1_k3_s1_e1_c16",
    "ir_r1_k3_a1.1_p1.1_s2_e6_c24", "ir_r1_k3_a1.1_p1.1_s1_e3_c24",
    "ir_r1_k3.5.7_s2_e6_c40_se0.5_nsw", "ir_r3_k3.5_a1.1_p1.1_s1_e6_c40_se0.5_nsw",
    "ir_r1_k3.5.7_p1.1_s2_e6_c80_se0.25_nsw", "ir_r2_k3.5_p1.1_s1_e6_c80_se0.25_nsw",
    "ir_r1_k3.5.7_a1.1_p1.1_s1_e6_c120_se0.5_nsw", "ir_r2_k3.5.7.9_a1.1_p1.1_s1_e3_c120_se0.5_nsw",
    "ir_r1_k3.5.7.9.11_s2_e6_c200_se0.5_nsw", "ir_r2_k3.5.7.9_p1.1_s1_e6_c200_se0.5_nsw",
)
STEM, HEAD = 16, 1536


def mixnet_features(x, width_mult=1.0, depth_mult=1.0, name="mixnet"):
    return timm_block_features(x, ARCH, STEM, HEAD, "relu", width_mult, depth_mult, name=name)


@register("mixnet_s")
def build_mixnet_s(input_shape=(96, None, 1), num_tags=56, width_mult=1.0, depth_mult=1.0, dropout=0.0,
                   imagenet_classes=None, weights=None):
    """MixNet-S (MixConv) rebuilt from timm's block strings with the 1->3 channel stem; SELAB-HCMUS 2021."""
    features = functools.partial(mixnet_features, width_mult=width_mult, depth_mult=depth_mult)
    return timm_style_tagger("mixnet_s", features, input_shape, num_tags, dropout, imagenet_classes, weights)
