"""MTG's VGG-ish baseline CNN (MTG/mtg-jamendo-dataset : scripts/baseline/model.py), widths as a parameter.

Written from reading the original: input BN, 5 x [conv 3x3 padding 1 -> BN -> ELU -> max pool], flatten,
dropout 0.5, Linear, sigmoid. Its state dict keys (`bn_init`, `conv_1`, `bn_1`, ..., `dense`) are the original's.
"""

import torch
from torch import nn

POOLS = ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))


class CNN(nn.Module):
    def __init__(self, num_class=56, channels=(64, 128, 128, 128, 64)):
        super().__init__()
        self.bn_init = nn.BatchNorm2d(1)
        cin = 1
        for i, (width, pool) in enumerate(zip(channels, POOLS), start=1):
            setattr(self, f"conv_{i}", nn.Conv2d(cin, width, 3, padding=1))
            setattr(self, f"bn_{i}", nn.BatchNorm2d(width))
            setattr(self, f"mp_{i}", nn.MaxPool2d(pool))
            cin = width
        self.dense = nn.Linear(cin, num_class)

    def forward(self, x):  # x: [batch, bands, frames]
        x = self.bn_init(x.unsqueeze(1))
        for i in range(1, 6):
            x = getattr(self, f"mp_{i}")(nn.functional.elu(getattr(self, f"bn_{i}")(getattr(self, f"conv_{i}")(x))))
        return torch.sigmoid(self.dense(nn.functional.dropout(x.flatten(1), 0.5, self.training)))
