"""torchvision's mobilenet_v2 (the reference itself is torchvision's) -> tfmood's `mobilenetv2` (source="torchvision")
layer names, as `{torchvision module: Keras layer}` for `tfmood.models.timm_port.copy_weights`.

torchvision 0.29: `features[0]` stem Conv2dNormActivation (0 conv, 1 bn); `features[1]` the t=1 InvertedResidual
(`conv`: [Conv2dNormActivation dw, Conv2d project, BN]); `features[2..17]` InvertedResidual (`conv`: [expand
Conv2dNormActivation, dw Conv2dNormActivation, Conv2d project, BN]); `features[18]` the 1x1 head conv; `classifier`
= [Dropout, Linear].
"""

PREFIX = "mobilenetv2"


def keras_names(features, prefix="features", classifier=None) -> dict:
    """`features`: torchvision's `mobilenet_v2().features`, named `prefix` inside the module being ported."""
    last = len(features) - 1
    names = {f"{prefix}.0.0": f"{PREFIX}_stem_conv", f"{prefix}.0.1": f"{PREFIX}_stem_bn",
             f"{prefix}.{last}.0": f"{PREFIX}_head_conv", f"{prefix}.{last}.1": f"{PREFIX}_head_bn"}
    for index in range(1, last):
        block, path = f"{PREFIX}_block{index}", f"{prefix}.{index}.conv"
        if len(features[index].conv) == 3:  # no expansion
            parts = {"0.0": "dw", "0.1": "dw_bn", "1": "project", "2": "project_bn"}
        else:
            parts = {"0.0": "expand", "0.1": "expand_bn", "1.0": "dw", "1.1": "dw_bn", "2": "project",
                     "3": "project_bn"}
        names.update({f"{path}.{module}": f"{block}_{layer}" for module, layer in parts.items()})
    if classifier:
        names[classifier] = "classifier_fc"
    return names
