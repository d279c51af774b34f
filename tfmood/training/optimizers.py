"""Optimizers by name, built from the training config (`optimizer`, `lr`, `weight_decay`, `amsgrad`).

    optimizer = optimizers.build(cfg)      # cfg.optimizer in OPTIMIZERS.names()

Keras 3 applies `weight_decay` *decoupled* (`w -= lr * wd * w`, as AdamW) in every optimizer, so `adam` with
a weight decay is AdamW, and `sgd`'s decay is not PyTorch's coupled L2 term (`grad += wd * w`, which AMLAG's
SGD(wd=1e-4) used); the two differ by a factor of the learning rate and in how momentum sees the decay.
"""

import keras

from tfmood.registry import Registry

OPTIMIZERS = Registry("optimizer")


@OPTIMIZERS.register("adam")
def adam(cfg):
    """Adam (betas .9/.999); `amsgrad` for SELAB-HCMUS / AMLAG submission 1; no weight decay by default."""
    return keras.optimizers.Adam(cfg.lr, amsgrad=cfg.amsgrad, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adamw")
def adamw(cfg):
    """AdamW (Loshchilov & Hutter): decoupled weight decay, 1e-2 by default (PyTorch's default)."""
    decay = 1e-2 if cfg.weight_decay is None else cfg.weight_decay
    return keras.optimizers.AdamW(cfg.lr, weight_decay=decay, amsgrad=cfg.amsgrad)


@OPTIMIZERS.register("sgd")
def sgd(cfg):
    """SGD with Nesterov momentum .9 (AMLAG's second stage); decoupled weight decay if given."""
    if cfg.amsgrad:
        raise ValueError("`amsgrad` applies to adam/adamw only. Received: optimizer='sgd', amsgrad=True.")
    return keras.optimizers.SGD(cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)


def build(cfg) -> keras.optimizers.Optimizer:
    return OPTIMIZERS.get(cfg.optimizer)(cfg)
