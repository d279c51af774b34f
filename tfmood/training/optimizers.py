"""Optimizers by name, built from the training config (`optimizer`, `lr`, `weight_decay`, `amsgrad`).

    optimizer = optimizers.build(cfg)      # cfg.optimizer in OPTIMIZERS.names()

Keras 3 applies `weight_decay` *decoupled* (`w -= lr * wd * w`, as AdamW) in every optimizer, so `adam` with
a weight decay is AdamW, and `sgd`'s decay is not PyTorch's coupled L2 term (`grad += wd * w`, which AMLAG's
SGD(wd=1e-4) used); the two differ by a factor of the learning rate and in how momentum sees the decay.

`adam_sgd` is the staged optimiser of AMLAG 2019 and MTG's baseline (submission2/solver.py,
scripts/baseline/solver.py): PyTorch's Adam, then PyTorch's SGD (Nesterov, momentum .9, *coupled* weight
decay 1e-4). One optimizer holds both states and a `stage` variable, so `BackupAndRestore` saves and restores
the stage, the momenta and the rate with the weights: a resumed run continues in the right stage with the
right optimizer. The `staged` schedule (`tfmood.training.schedules`) moves it between stages.
"""

import keras
from keras import ops

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


@keras.saving.register_keras_serializable(package="tfmood")
class AdamThenSGD(keras.optimizers.Optimizer):
    """Stage 0: `torch.optim.Adam`; stages >= 1: `torch.optim.SGD(momentum, nesterov=True, weight_decay)`.

    Both updates are written in PyTorch's form, which differs from Keras' own optimizers: Adam adds `eps`
    to the bias-corrected sqrt(v) (Keras scales it), and SGD keeps a momentum buffer that does not include
    the rate (`buf = mu * buf + g`, step `lr * (g + mu * buf)`) and adds `wd * w` to the gradient (coupled
    L2). The buffer therefore carries over unchanged when the rate drops, as in the originals, which only
    set `param_group['lr']`. The SGD buffer starts at zero when stage 1 begins (it is never touched during
    Adam), which is PyTorch's first step `buf = g`. `stage` is set by the `staged` schedule's callback.
    """

    def __init__(self, learning_rate=1e-4, beta_1=0.9, beta_2=0.999, epsilon=1e-8, momentum=0.9,
                 sgd_weight_decay=1e-4, name="adam_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.momentum, self.sgd_weight_decay = float(momentum), float(sgd_weight_decay)
        # Created now, like `iterations`: the schedule sets it before the first step builds the slots.
        with keras.name_scope(self.name, caller=self):
            stage = keras.Variable(0, name="stage", dtype="int64", trainable=False,
                                   aggregation="only_first_replica")
        self._track_variable(stage)
        self.stage = stage

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m = [self.add_variable_from_reference(v, "adam_m") for v in var_list]
        self._v = [self.add_variable_from_reference(v, "adam_v") for v in var_list]
        self._buf = [self.add_variable_from_reference(v, "sgd_momentum") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m, v, buf = self._m[index], self._v[index], self._buf[index]
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        sgd = ops.greater(self.stage, 0)  # one scalar; each state only moves in its own stages
        # Adam (PyTorch): bias-corrected moments, eps outside the square root.
        t = ops.cast(self.iterations + 1, dtype)
        m_new = self.beta_1 * m + (1.0 - self.beta_1) * g
        v_new = self.beta_2 * v + (1.0 - self.beta_2) * ops.square(g)
        adam_step = lr / (1.0 - ops.power(self.beta_1, t)) * m_new / (
            ops.sqrt(v_new / (1.0 - ops.power(self.beta_2, t))) + self.epsilon)
        # SGD (PyTorch): coupled weight decay, Nesterov on a rate-free buffer.
        g_wd = g + self.sgd_weight_decay * variable
        buf_new = self.momentum * buf + g_wd
        sgd_step = lr * (g_wd + self.momentum * buf_new)
        self.assign(m, ops.where(sgd, m, m_new))
        self.assign(v, ops.where(sgd, v, v_new))
        self.assign(buf, ops.where(sgd, buf_new, buf))
        self.assign_sub(variable, ops.where(sgd, sgd_step, adam_step))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "momentum": self.momentum, "sgd_weight_decay": self.sgd_weight_decay}


@OPTIMIZERS.register("adam_sgd")
def adam_sgd(cfg):
    """AMLAG / MTG baseline: PyTorch Adam at `lr`, then SGD (Nesterov .9, coupled weight decay
    `weight_decay`, default 1e-4) once the `staged` schedule switches; needs `schedule="staged"`."""
    if cfg.amsgrad:
        raise ValueError("`amsgrad` applies to adam/adamw only. Received: optimizer='adam_sgd', amsgrad=True.")
    return AdamThenSGD(cfg.lr, sgd_weight_decay=1e-4 if cfg.weight_decay is None else cfg.weight_decay)


def inner(optimizer):
    """The optimizer under a mixed-precision `LossScaleOptimizer` (or `optimizer` itself)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def build(cfg) -> keras.optimizers.Optimizer:
    return OPTIMIZERS.get(cfg.optimizer)(cfg)
