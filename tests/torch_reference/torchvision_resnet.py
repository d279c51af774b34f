"""torchvision's resnet34 (the reference itself is torchvision's) -> tfmood `resnet34` layer names."""

from . import port


def keras_mapping(reference, name="resnet34") -> dict:
    mapping = {f"{name}_stem_conv": port.conv(reference.conv1), f"{name}_stem_bn": port.batch_norm(reference.bn1),
               "classifier_fc": port.linear(reference.fc)}
    for stage in range(1, 5):
        for index, block in enumerate(getattr(reference, f"layer{stage}"), start=1):
            prefix = f"{name}_stage{stage}_block{index}"
            for part in (1, 2):
                mapping[f"{prefix}_{part}_conv"] = port.conv(getattr(block, f"conv{part}"))
                mapping[f"{prefix}_{part}_bn"] = port.batch_norm(getattr(block, f"bn{part}"))
            if block.downsample is not None:
                mapping[f"{prefix}_down_conv"] = port.conv(block.downsample[0])
                mapping[f"{prefix}_down_bn"] = port.batch_norm(block.downsample[1])
    return mapping
