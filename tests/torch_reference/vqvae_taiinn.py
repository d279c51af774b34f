"""Taiinn's VQ-VAE and GRU classifier (annahung31/moodtheme-tagging : src/model.py, src/GRU_model.py).

Written from reading the original. The residual block keeps the original's in-place first ReLU, which is what
makes its skip rectified: `x + block(x)` reads x after `nn.ReLU(inplace=True)` has overwritten it.
"""

import torch
from torch import nn

from . import port


class ResBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.block = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 3, 1, 1), nn.BatchNorm2d(dim),
                                   nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 1), nn.BatchNorm2d(dim))

    def forward(self, x):
        return x + self.block(x)  # x has been rectified in place by the time it is added


class VQVAE(nn.Module):
    def __init__(self, dim=256, codes=1024):
        super().__init__()
        enc = []
        for i, d in enumerate((2, 4, 8, 16)):
            enc += [nn.Conv2d(1 if i == 0 else dim, dim, (4, 3), (2, 1), (1, d), dilation=(1, d)),
                    nn.BatchNorm2d(dim), nn.ReLU(inplace=True)]
        enc += [nn.Conv2d(dim, dim, (5, 4), (1, 2), (0, 1)), ResBlock(dim), ResBlock(dim)]
        self.encoder = nn.Sequential(*enc)
        self.codebook = nn.Embedding(codes, dim)
        dec = [ResBlock(dim), ResBlock(dim), nn.ReLU(inplace=True)]
        for kernel, stride, padding in (((4, 4), (1, 2), (0, 1)), ((4, 3), (2, 1), (0, 1)), ((4, 3), (2, 1), 1),
                                        ((4, 3), (2, 1), 1)):
            dec += [nn.ConvTranspose2d(dim, dim, kernel, stride, padding), nn.BatchNorm2d(dim), nn.ReLU(inplace=True)]
        dec += [nn.ConvTranspose2d(dim, 1, (4, 3), (2, 1), 1), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)

    def quantize(self, z_e):
        """Nearest code (squared L2) of each D-vector: indices [B, H, W] and z_q [B, D, H, W]."""
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
        indices = torch.cdist(flat, self.codebook.weight).argmin(dim=1)
        z_q = self.codebook.weight[indices].view(z_e.shape[0], z_e.shape[2], z_e.shape[3], -1).permute(0, 3, 1, 2)
        return indices.view(z_e.shape[0], z_e.shape[2], z_e.shape[3]), z_q

    def forward(self, x):
        z_e = self.encoder(x)
        indices, z_q = self.quantize(z_e)
        return z_e, indices, z_q, self.decoder(z_q.clone())  # clone: the decoder's in-place ReLU must not touch z_q


def _res_mapping(block: ResBlock, prefix: str) -> dict:
    seq = block.block
    return {f"{prefix}_conv1": port.conv(seq[1]), f"{prefix}_bn1": port.batch_norm(seq[2]),
            f"{prefix}_conv2": port.conv(seq[4]), f"{prefix}_bn2": port.batch_norm(seq[5])}


def encoder_mapping(reference: VQVAE) -> dict:
    enc = reference.encoder
    mapping = {}
    for i in range(4):
        mapping[f"enc_conv{i + 1}"] = port.conv(enc[3 * i])
        mapping[f"enc_bn{i + 1}"] = port.batch_norm(enc[3 * i + 1])
    mapping["enc_conv5"] = port.conv(enc[12])
    mapping.update(_res_mapping(enc[13], "enc_res1"))
    mapping.update(_res_mapping(enc[14], "enc_res2"))
    mapping["codebook"] = [reference.codebook.weight.detach().numpy().copy()]
    return mapping


def decoder_mapping(reference: VQVAE) -> dict:
    dec = reference.decoder
    mapping = {**_res_mapping(dec[0], "dec_res1"), **_res_mapping(dec[1], "dec_res2")}
    for i in range(4):
        mapping[f"dec{i + 1}_convt"] = port.conv(dec[3 + 3 * i])
        mapping[f"dec_bn{i + 1}"] = port.batch_norm(dec[4 + 3 * i])
    mapping["dec5_convt"] = port.conv(dec[15])
    return mapping


class GRUClassifier(nn.Module):
    """Taiinn's RNNclassifier: BiGRU(2 layers) -> LayerNorm((T, 2H)) -> BiGRU(2 layers) -> LayerNorm((4, H)) on the
    final states -> Linear, Dropout, ReLU, Linear, Dropout, ReLU, Linear, Sigmoid. (Taiinn: T = 512, H = 256.)"""

    def __init__(self, input_size, steps, hidden=256, dense=(512, 256), classes=56):
        super().__init__()
        self.gru1 = nn.GRU(input_size, hidden, 2, bidirectional=True, batch_first=True, dropout=0.3)
        self.gru2 = nn.GRU(2 * hidden, hidden, 2, bidirectional=True, batch_first=True, dropout=0.3)
        self.first_layer_norm = nn.LayerNorm((steps, 2 * hidden))
        self.layer_norm = nn.LayerNorm((4, hidden))
        self.linear_layers = nn.Sequential(nn.Linear(4 * hidden, dense[0]), nn.Dropout(0.05), nn.ReLU(),
                                           nn.Linear(dense[0], dense[1]), nn.Dropout(0.05), nn.ReLU(),
                                           nn.Linear(dense[1], classes), nn.Sigmoid())

    def forward(self, sequence):
        out, _ = self.gru1(sequence)
        out, states = self.gru2(self.first_layer_norm(out))
        states = self.layer_norm(states.permute(1, 0, 2))
        return self.linear_layers(states.reshape(sequence.shape[0], -1))


def gru_mapping(reference: GRUClassifier) -> dict:
    lin = reference.linear_layers
    return {"gru1_1": port.bidirectional_gru(reference.gru1, 0), "gru1_2": port.bidirectional_gru(reference.gru1, 1),
            "gru2_1": port.bidirectional_gru(reference.gru2, 0), "gru2_2": port.bidirectional_gru(reference.gru2, 1),
            "gru1_norm": port.layer_norm(reference.first_layer_norm),
            "state_norm": [w.reshape(-1) for w in port.layer_norm(reference.layer_norm)],
            "dense1": port.linear(lin[0]), "dense2": port.linear(lin[3]), "scores": port.linear(lin[6])}
