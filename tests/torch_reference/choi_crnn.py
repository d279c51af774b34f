"""Choi's CRNN (keunwoochoi/music-auto_tagging-keras : music_tagger_crnn.py, HEAD; Keras 1), in PyTorch.

Written from reading the original: ZeroPadding2D((0, 37)) on the time axis, then BatchNormalization over the
frequency axis (one statistic per band; the padded zeros go through it), 4 x [Convolution2D 3x3 'same' -> BN
(mode 0) -> ELU -> MaxPooling2D (pool = stride, Keras 1's default 'valid' border) -> Dropout 0.1], Reshape to
(frames, 128), GRU(32, return_sequences) -> GRU(32) -> Dropout 0.3 -> Dense sigmoid. Keras 1 BN: epsilon 1e-3,
inference on the running mean / variance. Keras 1 GRU (recurrent.py, `step`): activation tanh,
inner_activation hard_sigmoid = clip(0.2 x + 0.5, 0, 1), one bias per gate, and the reset gate multiplies the
previous state *before* the recurrent product: z = hs(x W_z + b_z + h U_z), r = hs(x W_r + b_r + h U_r),
hh = tanh(x W_h + b_h + (r * h) U_h), h' = z * h + (1 - z) * hh.
`keras1=False` swaps in torch.nn.GRU (sigmoid gates, reset after the product, two biases), tfmood's default
"pytorch" style (compared where the pools divide the input, so "same" and "valid" pools agree). Sizes are
parameters so the tests can shrink it.
"""

import torch
from torch import nn

POOLS = ((2, 2), (3, 3), (4, 4), (4, 4))


def keras1_hard_sigmoid(x):
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


class Keras1GRU(nn.Module):
    """One Keras 1 GRU layer, its weights named as Keras 1 stored them (W_z, U_z, b_z, W_r, ...)."""

    def __init__(self, input_dim, units, return_sequences):
        super().__init__()
        self.units, self.return_sequences = units, return_sequences
        for gate in "zrh":
            setattr(self, f"W_{gate}", nn.Parameter(torch.empty(input_dim, units)))
            setattr(self, f"U_{gate}", nn.Parameter(torch.empty(units, units)))
            setattr(self, f"b_{gate}", nn.Parameter(torch.empty(units)))

    def forward(self, x):  # [batch, steps, features]
        h = x.new_zeros((x.shape[0], self.units))
        states = []
        for t in range(x.shape[1]):
            step = x[:, t]
            z = keras1_hard_sigmoid(step @ self.W_z + self.b_z + h @ self.U_z)
            r = keras1_hard_sigmoid(step @ self.W_r + self.b_r + h @ self.U_r)
            hh = torch.tanh(step @ self.W_h + self.b_h + (r * h) @ self.U_h)
            h = z * h + (1 - z) * hh
            states.append(h)
        return torch.stack(states, 1) if self.return_sequences else h


class MusicTaggerCRNN(nn.Module):
    def __init__(self, bands=96, num_tags=50, channels=(64, 128, 128, 128), gru_units=32, time_padding=37,
                 keras1=True):
        super().__init__()
        self.time_padding, self.keras1 = time_padding, keras1
        self.bn_0_freq = nn.BatchNorm2d(bands, eps=1e-3)
        cin = 1
        for i, (width, pool) in enumerate(zip(channels, POOLS), start=1):
            setattr(self, f"conv{i}", nn.Conv2d(cin, width, 3, padding=1))
            setattr(self, f"bn{i}", nn.BatchNorm2d(width, eps=1e-3))
            setattr(self, f"pool{i}", nn.MaxPool2d(pool))
            cin = width
        if keras1:
            self.gru1, self.gru2 = Keras1GRU(cin, gru_units, True), Keras1GRU(gru_units, gru_units, False)
        else:
            self.gru1, self.gru2 = nn.GRU(cin, gru_units, batch_first=True), nn.GRU(gru_units, gru_units,
                                                                                     batch_first=True)
        self.output = nn.Linear(gru_units, num_tags)

    def forward(self, x):  # x: [batch, 1, bands, frames]
        x = nn.functional.pad(x, (self.time_padding, self.time_padding))
        x = self.bn_0_freq(x.transpose(1, 2)).transpose(1, 2)  # bands as BN features
        for i in range(1, len(POOLS) + 1):
            conv, bn, pool = (getattr(self, f"{kind}{i}") for kind in ("conv", "bn", "pool"))
            x = pool(nn.functional.elu(bn(conv(x))))
        assert x.shape[2] == 1, f"{x.shape[2]} frequency rows left: Choi's Reshape needs 96 bands"
        x = x[:, :, 0].transpose(1, 2)  # [batch, frames, channels], as Keras' Reshape of (1, frames, channels)
        if self.keras1:
            x = self.gru2(self.gru1(x))
        else:
            x = self.gru2(self.gru1(x)[0])[0][:, -1]
        return torch.sigmoid(self.output(x))


def keras_gru(module) -> list:
    """Keras 1 GRU -> Keras 3 GRU(reset_after=False): kernel [W_z | W_r | W_h], recurrent kernel likewise, bias."""
    def cat(kind):
        return torch.cat([getattr(module, f"{kind}_{gate}") for gate in "zrh"], -1).detach().numpy()
    return [cat("W"), cat("U"), cat("b")]


def keras_mapping(net, port) -> dict:
    """`{tfmood crnn layer name: weights}`."""
    mapping = {"input_bn": port.batch_norm(net.bn_0_freq), "head_scores": port.linear(net.output)}
    for i in range(1, len(POOLS) + 1):
        mapping[f"block{i}_conv"] = port.conv(getattr(net, f"conv{i}"))
        mapping[f"block{i}_bn"] = port.batch_norm(getattr(net, f"bn{i}"))
    for name in ("gru1", "gru2"):
        module = getattr(net, name)
        mapping[name] = keras_gru(module) if net.keras1 else port.gru_direction(module, 0, False)
    return mapping
