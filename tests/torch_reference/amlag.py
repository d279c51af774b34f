"""AMLAG 2019's self-attention module and its two heads
(sainathadapa/mediaeval-2019-moodtheme-detection : self_attention.py, model.py).

Written from reading the original: sinusoidal positions with an all-zero row 0 added to the segment tokens,
post-LN BERT layers (separate q/k/v Linear, softmax(qk^T / sqrt(d)), output Linear, residual + LayerNorm eps 1e-12;
Linear -> erf GELU -> Linear, residual + LayerNorm), tanh pooler on token 0; `att` = Dropout, Linear, Sigmoid on
the pooled vector; `clf` = Dropout, Linear, Dropout, Linear, Sigmoid per token, averaged over tokens.
"""

import math

import numpy as np
import torch
from torch import nn

from . import port


def position_table(length, dim):
    table = np.array([[p / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)] if p else np.zeros(dim)
                      for p in range(length)])
    table[1:, 0::2] = np.sin(table[1:, 0::2])
    table[1:, 1::2] = np.cos(table[1:, 1::2])
    return torch.from_numpy(table).float()


class BertLayer(nn.Module):
    def __init__(self, hidden, heads, ffn):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, ffn)
        self.output = nn.Linear(ffn, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x):
        batch, n, hidden = x.shape
        size = hidden // self.heads
        split = lambda t: t.view(batch, n, self.heads, size).permute(0, 2, 1, 3)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(size), dim=-1)
        context = (probs @ v).permute(0, 2, 1, 3).reshape(batch, n, hidden)
        x = self.attention_norm(self.attention_out(context) + x)
        expanded = self.intermediate(x)
        expanded = expanded * 0.5 * (1.0 + torch.erf(expanded / math.sqrt(2.0)))
        return self.output_norm(self.output(expanded) + x)


class AttentionHeads(nn.Module):
    """Tokens [batch, n, hidden] -> (att, clf) scores, as MusicSelfAttModel after its CNN."""

    def __init__(self, hidden=256, heads=4, ffn=1024, layers=2, positions=16, classes=56):
        super().__init__()
        self.register_buffer("positions", position_table(positions, hidden))
        self.layers = nn.ModuleList(BertLayer(hidden, heads, ffn) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)
        self.att = nn.Sequential(nn.Dropout(0.2), nn.Linear(hidden, classes), nn.Sigmoid())
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(hidden, hidden), nn.Dropout(0.2),
                                        nn.Linear(hidden, classes), nn.Sigmoid())

    def forward(self, tokens):
        x = tokens + self.positions[:tokens.shape[1]].unsqueeze(0)
        for layer in self.layers:
            x = layer(x)
        att = self.att(torch.tanh(self.pooler(x[:, 0])))
        clf = self.classifier(tokens).mean(dim=1)
        return att, clf


def _mha(layer: BertLayer, heads: int) -> list:
    """Keras MultiHeadAttention weights: q, k, v kernels (hidden, heads, size) + biases (heads, size), then the
    output kernel (heads, size, hidden) + bias."""
    hidden = layer.query.in_features
    size = hidden // heads
    weights = []
    for dense in (layer.query, layer.key, layer.value):
        kernel, bias = port.linear(dense)
        weights += [kernel.reshape(hidden, heads, size), bias.reshape(heads, size)]
    kernel, bias = port.linear(layer.attention_out)
    return weights + [kernel.reshape(heads, size, hidden), bias]


def keras_mapping(reference: AttentionHeads, heads: int = 4) -> dict:
    """{tfmood attention_classifier / segment_classifier layer: weights} (prefixes `att`, `clf`)."""
    mapping = {"att_pooler": port.linear(reference.pooler), "att_scores": port.linear(reference.att[1]),
               "clf_dense1": port.linear(reference.classifier[1]), "clf_scores": port.linear(reference.classifier[3])}
    for i, layer in enumerate(reference.layers, start=1):
        prefix = f"att_layer{i}"
        mapping[f"{prefix}_mha"] = _mha(layer, heads)
        mapping[f"{prefix}_mha_norm"] = port.layer_norm(layer.attention_norm)
        mapping[f"{prefix}_ffn_in"] = port.linear(layer.intermediate)
        mapping[f"{prefix}_ffn_out"] = port.linear(layer.output)
        mapping[f"{prefix}_ffn_norm"] = port.layer_norm(layer.output_norm)
    return mapping
