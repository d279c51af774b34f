"""Random weights for a PyTorch reference, and their conversion into tfmood's Keras layers.

Layout rules (PyTorch NCHW, H = frequency -> Keras NHWC): Conv2d weight OIHW -> HWIO; ConvTranspose2d weight
(in, out, h, w) -> Keras Conv2DTranspose (h, w, out, in), the same transpose; Linear weight (out, in) -> (in, out);
BatchNorm weight, bias, running_mean, running_var -> gamma, beta, moving_mean, moving_variance; GRU gates
(r, z, n) -> Keras (z, r, h), biases stacked as Keras' reset_after (input bias, recurrent bias).
"""

import numpy as np
import torch
from torch import nn


def randomize_norms(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random batch-norm statistics and affines and random linear layers, the convolutions keeping the library's own
    initialisation (its weight scale: deep ImageNet nets stay within float32's reach of the 1e-5 tolerance), so an
    unported or misplaced tensor shows. Returns `net` in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.2, generator=generator)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0.0, 0.02, generator=generator)  # logits of std ~0.3-1: float32 round-off
                module.bias.normal_(0.0, 0.2, generator=generator)     # stays well under the tolerance
    return net.eval()


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and random batch-norm statistics, so that no layer can hide behind its init (zeros, ones)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if not tensor.is_floating_point() or (name in dict(module.named_buffers())
                                                  and not name.endswith(("running_mean", "running_var"))):
                continue  # fixed buffers (a position table) are part of the architecture
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif name.endswith("weight") and tensor.ndim == 1:  # BN / LayerNorm scale
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                fan_in = int(np.prod(tensor.shape[1:])) if tensor.ndim > 1 else 16
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / np.sqrt(fan_in))
    return module.eval()


def trainable_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def keras_trainable_count(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _np(tensor):
    return tensor.detach().cpu().numpy().astype(np.float32)


def conv(module) -> list:
    """Conv2d or ConvTranspose2d -> [kernel, (bias)]."""
    weights = [_np(module.weight).transpose(2, 3, 1, 0)]
    return weights + ([_np(module.bias)] if module.bias is not None else [])


def batch_norm(module) -> list:
    return [_np(module.weight), _np(module.bias), _np(module.running_mean), _np(module.running_var)]


def layer_norm(module) -> list:
    return [_np(module.weight), _np(module.bias)]


def linear(module) -> list:
    return [_np(module.weight).T, _np(module.bias)]


def _gates(array, units):
    r, z, n = array[:units], array[units:2 * units], array[2 * units:]
    return np.concatenate([z, r, n])


def gru_direction(module: nn.GRU, layer: int, reverse: bool) -> list:
    """One direction of one layer of a torch GRU -> Keras GRU [kernel, recurrent_kernel, bias (2, 3 units)]."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    units = module.hidden_size
    w_ih, w_hh = (_np(getattr(module, f"{kind}{suffix}")) for kind in ("weight_ih", "weight_hh"))
    b_ih, b_hh = (_np(getattr(module, f"{kind}{suffix}")) for kind in ("bias_ih", "bias_hh"))
    return [_gates(w_ih, units).T, _gates(w_hh, units).T, np.stack([_gates(b_ih, units), _gates(b_hh, units)])]


def bidirectional_gru(module: nn.GRU, layer: int) -> list:
    """Keras `Bidirectional(GRU)` weights (forward, then backward) for layer `layer` of a bidirectional torch GRU."""
    return gru_direction(module, layer, False) + gru_direction(module, layer, True)


def assign(model, mapping: dict, trainable_only: bool = False) -> None:
    """`{keras layer name: weights}` -> set_weights, checking shapes (a wrong mapping fails loudly, not numerically).

    Every layer with weights must be set; with `trainable_only`, every layer with *trainable* weights (for models
    whose fixed layers, such as an identity input Normalization, are left as built)."""
    for name, values in mapping.items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        received = [tuple(v.shape) for v in values]
        assert expected == received, f"{name}: Keras expects {expected}, the reference gives {received}"
        layer.set_weights(values)
    ported = set(mapping)
    missing = [layer.name for layer in model.layers
               if (layer.trainable_weights if trainable_only else layer.get_weights()) and layer.name not in ported]
    kind = "trainable weights" if trainable_only else "weights"
    assert not missing, f"Keras layers with {kind} the port did not set: {missing}"


def to_nchw(x: np.ndarray) -> torch.Tensor:
    """Keras `[batch, bands, frames, channels]` -> torch `[batch, channels, bands, frames]`."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
