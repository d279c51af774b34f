"""efficientnet_pytorch (lukemelas/EfficientNet-PyTorch, HCMUS 2020's library) -> tfmood's Keras EfficientNet.

The mapping, written from reading both libraries (nothing copied):
- efficientnet_pytorch: `_conv_stem`/`_bn0`; a flat `_blocks` list of MBConv blocks, each with `_expand_conv`/`_bn0`
  (absent when the expand ratio is 1), `_depthwise_conv`/`_bn1`, `_se_reduce`/`_se_expand` (1x1 convs with bias),
  `_project_conv`/`_bn2`; then `_conv_head`/`_bn1` and `_fc`.
- keras.applications: `stem_conv`/`stem_bn`; blocks named `block{stage}{letter}_` + `expand_conv`/`expand_bn`,
  `dwconv`/`bn`, `se_reduce`/`se_expand`, `project_conv`/`project_bn`; `top_conv`/`top_bn`;
  tfmood's head `classifier_fc`.
Both enumerate the blocks in the same order, so the i-th torch block is the i-th Keras block prefix.
Depthwise kernels: torch (C, 1, kh, kw) -> Keras (kh, kw, C, 1); the rest follows tests/torch_reference/port.py.
"""

import re

from torch_reference import port

_BLOCK = re.compile(r"^(block\d+[a-z])_dwconv$")


def keras_backbone(model):
    """The nested keras.applications EfficientNet inside a tfmood model."""
    (backbone,) = [layer for layer in model.layers if layer.name.startswith("efficientnet")]
    return backbone


def depthwise(module) -> list:
    return [port._np(module.weight).transpose(2, 3, 0, 1)]


def mapping(net, backbone) -> dict:
    """`{keras layer name: weights}` for the backbone (everything but the classifier)."""
    prefixes = [m.group(1) for m in (_BLOCK.match(layer.name) for layer in backbone.layers) if m]
    assert len(prefixes) == len(net._blocks), f"{len(prefixes)} Keras blocks vs {len(net._blocks)} torch blocks"
    weights = {"stem_conv": port.conv(net._conv_stem), "stem_bn": port.batch_norm(net._bn0),
               "top_conv": port.conv(net._conv_head), "top_bn": port.batch_norm(net._bn1)}
    for prefix, block in zip(prefixes, net._blocks):
        if hasattr(block, "_expand_conv"):
            weights[f"{prefix}_expand_conv"] = port.conv(block._expand_conv)
            weights[f"{prefix}_expand_bn"] = port.batch_norm(block._bn0)
        weights[f"{prefix}_dwconv"] = depthwise(block._depthwise_conv)
        weights[f"{prefix}_bn"] = port.batch_norm(block._bn1)
        weights[f"{prefix}_se_reduce"] = port.conv(block._se_reduce)
        weights[f"{prefix}_se_expand"] = port.conv(block._se_expand)
        weights[f"{prefix}_project_conv"] = port.conv(block._project_conv)
        weights[f"{prefix}_project_bn"] = port.batch_norm(block._bn2)
    return weights


def port_classifier(net, model) -> None:
    """Copy an efficientnet_pytorch ImageNet classifier into tfmood's `imagenet_classes` model (built without
    ImageNet weights: its input Normalization layer is then the identity and is left as built)."""
    backbone = keras_backbone(model)
    port.assign(backbone, mapping(net, backbone), trainable_only=True)
    model.get_layer("classifier_fc").set_weights(port.linear(net._fc))
