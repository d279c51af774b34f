"""CP-JKU's CP ResNet and frequency-aware CP ResNet (kkoutini/cpjku_dcase19 : models/cp_resnet.py, cp_faresnet.py).

Written from reading the original: stem Conv k5 s2 padding 1 -> BN -> ReLU; three stages of BasicBlocks with
kernels from `get_model_based_on_rho`, padding k // 3, a 1x1 conv + BN shortcut where the width changes; 2x2 max
pools (no padding) after blocks 1, 2 and 4 of stage 1; head 1x1 conv to the classes -> BN -> global average ->
logits. The FA variant concatenates the channel 2f/F - 1 before conv1 and conv2 of every block. Also CP-JKU's
`utils_funcs.get_maxrf` recursion, to state what it reports.
"""

import torch
import torch.nn.functional as F
from torch import nn

from . import port


def rho_config(rho: int) -> dict:
    """Per-stage (k1s, k2s, maxpool positions) as `get_model_based_on_rho` builds them."""
    e = rho - 7
    return {
        1: ([3, 3 - 2 * (-e > 6), 3 - 2 * (-e > 4), 3 - 2 * (-e > 2)],
            [1, 3 - 2 * (-e > 5), 3 - 2 * (-e > 3), 3 - 2 * (-e > 1)], [1, 2, 4]),
        2: ([3 - 2 * (-e > 0), 1 + 2 * (e > 1), 1 + 2 * (e > 3), 1 + 2 * (e > 5)],
            [1 + 2 * (e > 0), 1 + 2 * (e > 2), 1 + 2 * (e > 4), 1 + 2 * (e > 6)], []),
        3: ([1 + 2 * (e > 7), 1 + 2 * (e > 9), 1 + 2 * (e > 11), 1 + 2 * (e > 13)],
            [1 + 2 * (e > 8), 1 + 2 * (e > 10), 1 + 2 * (e > 12), 1 + 2 * (e > 14)], []),
    }


def frequency_channel(x):
    """The FA-ResNet coordinate 2f/F - 1 as an extra channel (cp_faresnet `getpad`)."""
    batch, _, bands, frames = x.shape
    position = torch.arange(bands, dtype=x.dtype) * 2 / bands - 1.0
    return torch.cat([x, position.view(1, 1, bands, 1).expand(batch, 1, bands, frames)], dim=1)


class Block(nn.Module):
    def __init__(self, cin, cout, k1, k2, frequency_aware):
        super().__init__()
        extra = int(frequency_aware)
        self.frequency_aware = frequency_aware
        self.conv1 = nn.Conv2d(cin + extra, cout, k1, padding=k1 // 3, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout + extra, cout, k2, padding=k2 // 3, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if cin != cout:
            self.shortcut.add_module("conv", nn.Conv2d(cin, cout, 1, bias=False))
            self.shortcut.add_module("bn", nn.BatchNorm2d(cout))

    def forward(self, x):
        prepare = frequency_channel if self.frequency_aware else (lambda t: t)
        y = F.relu(self.bn1(self.conv1(prepare(x))))
        y = self.bn2(self.conv2(prepare(y)))
        return F.relu(y + self.shortcut(x))


class CPResNet(nn.Module):
    def __init__(self, rho=7, base_channels=128, n_classes=56, depth=26, frequency_aware=False):
        super().__init__()
        per_stage = (depth - 2) // 6
        widths = [base_channels, base_channels * 2, base_channels * 4]
        self.in_c = nn.Sequential(nn.Conv2d(1, widths[0], 5, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        cin = widths[0]
        for stage, (k1s, k2s, pools) in rho_config(rho).items():
            layers = nn.Sequential()
            for index in range(per_stage):
                layers.add_module(f"block{index + 1}",
                                  Block(cin, widths[stage - 1], k1s[index], k2s[index], frequency_aware))
                cin = widths[stage - 1]
                if index + 1 in pools:
                    layers.add_module(f"pool{index + 1}", nn.MaxPool2d(2, 2))
            setattr(self, f"stage{stage}", layers)
        self.feed_forward = nn.Sequential(nn.Conv2d(cin, n_classes, 1, bias=False), nn.BatchNorm2d(n_classes),
                                          nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        x = self.stage3(self.stage2(self.stage1(self.in_c(x))))
        return self.feed_forward(x).flatten(1)  # logits


def keras_mapping(reference: CPResNet) -> dict:
    """{tfmood cp_resnet / fa_resnet layer: weights}."""
    mapping = {"stem_conv": port.conv(reference.in_c[0]), "stem_bn": port.batch_norm(reference.in_c[1]),
               "head_conv": port.conv(reference.feed_forward[0]), "head_bn": port.batch_norm(reference.feed_forward[1])}
    for stage in (1, 2, 3):
        for name, block in getattr(reference, f"stage{stage}").named_children():
            if not isinstance(block, Block):
                continue
            prefix = f"stage{stage}_{name}"
            for part in ("conv1", "conv2"):
                mapping[f"{prefix}_{part}"] = port.conv(getattr(block, part))
            for part in ("bn1", "bn2"):
                mapping[f"{prefix}_{part}"] = port.batch_norm(getattr(block, part))
            if len(block.shortcut):
                mapping[f"{prefix}_shortcut"] = port.conv(block.shortcut.conv)
                mapping[f"{prefix}_shortcut_bn"] = port.batch_norm(block.shortcut.bn)
    return mapping


def get_maxrf(rho: int, depth: int = 26) -> int:
    """CP-JKU's `utils_funcs.get_maxrf` over all 2 x blocks convolutions: start (stride 2, RF 5); for conv i the
    stride doubles first when i is the second conv of a block followed by a pool, then RF += (k - 1) * stride."""
    config, per_stage = rho_config(rho), (depth - 2) // 6
    stride, field = 2, 5
    for i in range(1, 3 * 2 * per_stage + 1):
        stage = (i - 1) // (2 * per_stage) + 1
        block = ((i - 1) % (2 * per_stage)) // 2
        k1s, k2s, pools = config[stage]
        second = i % 2 == 0
        if second and block + 1 in pools:
            stride *= 2
        field += ((k2s if second else k1s)[block] - 1) * stride
    return field
