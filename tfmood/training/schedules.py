"""Learning-rate schedules by name, each a list of callbacks built from the training config.

    callbacks = schedules.callbacks(cfg)   # cfg.schedule in SCHEDULES.names(), options in cfg.schedule_options

- `plateau`: divide by 10 after `plateau_patience` (5) epochs without a better validation PR-AUC (the default).
- `cpjku`: CP-JKU (systems.md A5): warm-up (0 epochs by default), lr0 until `decay_start`, then
  `lr0 * (1 - (e - decay_start) / (decay_end - decay_start))`, and `lr0 / 100` from `decay_end` on. CP-JKU's
  code uses decay_start 50 and decay_end 250; by default both scale with `epochs` (decay_start = epochs / 5,
  decay_end = epochs), so `--epochs 250` gives A5's values and a 10-epoch run keeps the same shape.
  As in A5 (the code), the linear part heads for 0 and steps to lr0/100 at decay_end; a decay that ends
  exactly at lr0/100 (the paper's wording) would differ by less than 1% of lr0.
- `cosine`: `keras.optimizers.schedules.CosineDecay` from lr0 to `alpha * lr0`, evaluated once per epoch.
- `staged`: AMLAG 2019 / MTG baseline (submission2/solver.py, scripts/baseline/solver.py), with the
  `adam_sgd` optimizer: Adam at lr0 for `adam_epochs` (60); then reload the best checkpoint and switch to SGD
  at `sgd_rates[0]` (1e-3); every `sgd_epochs` (20) after that, reload the best checkpoint and drop to the
  next rate (1e-4, 1e-5). Defaults without options scale to `epochs`: adam_epochs = epochs / 2 and
  sgd_epochs = epochs / 6 (AMLAG's 60 and 20 of 120).

The per-epoch schedules set the rate at the start of each epoch from the epoch index alone, so a run resumed
by `BackupAndRestore` gets the same rates as an uninterrupted one. Epochs are 0-based, as in CP-JKU's code.
"""

import os

import keras

from tfmood.registry import Registry
from tfmood.training.config import monitor_mode
from tfmood.training.optimizers import AdamThenSGD, inner

SCHEDULES = Registry("schedule")


def cpjku_rate(epoch, lr0, decay_start=50, decay_end=250, warmup=0, final_factor=0.01):
    """CP-JKU's 'linear' Adam schedule at 0-based `epoch` (systems.md A5)."""
    if epoch < warmup:
        return lr0 * (epoch + 1) / warmup
    if epoch < decay_start:
        return lr0
    if epoch < decay_end:
        return lr0 * (1.0 - (epoch - decay_start) / (decay_end - decay_start))
    return lr0 * final_factor


def cosine_rate(epoch, lr0, epochs, alpha=0.0):
    """Cosine decay from `lr0` at epoch 0 towards `alpha * lr0` at `epochs`."""
    return float(keras.optimizers.schedules.CosineDecay(lr0, decay_steps=epochs, alpha=alpha)(epoch))


@SCHEDULES.register("plateau")
def plateau(cfg, factor=0.1, patience=None, monitor=None, best_path=None):
    """ReduceLROnPlateau on `monitor` (default `cfg.monitor`, validation PR-AUC-macro): x0.1 after
    `plateau_patience` epochs without gain (SELAB and HCMUS watched `val_loss`: `monitor=val_loss`)."""
    monitor = monitor or cfg.monitor
    return [keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=monitor_mode(monitor), factor=factor,
                                              patience=cfg.plateau_patience if patience is None else patience)]


@SCHEDULES.register("cpjku")
def cpjku(cfg, decay_start=None, decay_end=None, warmup=0, final_factor=0.01, best_path=None):
    """CP-JKU 2019: constant, linear decay, then lr0/100 (A5), scaled to `epochs` unless given."""
    decay_end = cfg.epochs if decay_end is None else decay_end
    decay_start = round(decay_end / 5) if decay_start is None else decay_start
    if not 0 <= warmup <= decay_start < decay_end:
        raise ValueError(f"cpjku needs 0 <= warmup <= decay_start < decay_end. Received: warmup={warmup}, "
                         f"decay_start={decay_start}, decay_end={decay_end}; use --epochs >= 2.")
    return [keras.callbacks.LearningRateScheduler(
        lambda epoch: cpjku_rate(epoch, cfg.lr, decay_start, decay_end, warmup, final_factor))]


@SCHEDULES.register("cosine")
def cosine(cfg, alpha=0.0, best_path=None):
    """Cosine decay over the run's epochs (per-epoch), down to `alpha * lr`."""
    return [keras.callbacks.LearningRateScheduler(lambda epoch: cosine_rate(epoch, cfg.lr, cfg.epochs, alpha))]


def staged_boundaries(epochs, adam_epochs=None, sgd_epochs=None, sgd_rates=(1e-3, 1e-4, 1e-5)):
    """`(boundaries, sgd_rates)`: stage k >= 1 starts at 0-based epoch `boundaries[k - 1]`."""
    adam_epochs = max(1, epochs // 2) if adam_epochs is None else adam_epochs
    sgd_epochs = max(1, epochs // 6) if sgd_epochs is None else sgd_epochs
    if not (isinstance(adam_epochs, int) and isinstance(sgd_epochs, int) and adam_epochs >= 1 and sgd_epochs >= 1):
        raise ValueError(f"staged needs integer adam_epochs >= 1 and sgd_epochs >= 1. Received: "
                         f"adam_epochs={adam_epochs!r}, sgd_epochs={sgd_epochs!r}")
    if not sgd_rates or not all(r > 0 for r in sgd_rates):
        raise ValueError(f"staged needs one or more sgd_rates > 0. Received: {sgd_rates!r}")
    return [adam_epochs + k * sgd_epochs for k in range(len(sgd_rates))], [float(r) for r in sgd_rates]


class StagedOptimizer(keras.callbacks.Callback):
    """Moves an `AdamThenSGD` optimizer through its stages; at each stage boundary, first reloads the best
    checkpoint's *model* weights (the originals' `self.load(best_model.pth)`; the optimizer's state is kept).

    The stage and rate of an epoch follow from its index alone (set at each epoch start), and the reload
    happens at the end of the last epoch of a stage, before `BackupAndRestore` saves: a run killed and
    resumed anywhere continues in the right stage, with the right rate, momenta and weights.
    """

    def __init__(self, best_path, lr0, boundaries, sgd_rates, verbose=True):
        super().__init__()
        self.best_path, self.boundaries, self.verbose = best_path, list(boundaries), verbose
        self.rates = [float(lr0), *sgd_rates]

    def stage_of(self, epoch):
        return sum(epoch >= b for b in self.boundaries)

    def _optimizer(self):
        optimizer = inner(self.model.optimizer)
        if not isinstance(optimizer, AdamThenSGD):
            raise ValueError(f"The `staged` schedule needs optimizer='adam_sgd'. Received: "
                             f"{type(optimizer).__name__}.")
        return optimizer

    def on_epoch_begin(self, epoch, logs=None):
        optimizer, stage = self._optimizer(), self.stage_of(epoch)
        optimizer.stage.assign(stage)
        optimizer.learning_rate.assign(self.rates[stage])

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 not in self.boundaries:
            return
        if not os.path.exists(self.best_path):
            raise FileNotFoundError(f"The staged schedule reloads the best checkpoint at epoch {epoch + 1}, "
                                    f"but {self.best_path!r} does not exist.")
        optimizer = self._optimizer()
        kept = [v.numpy() for v in optimizer.variables]  # load_weights would roll the optimizer back too
        self.model.load_weights(self.best_path)
        for variable, value in zip(optimizer.variables, kept):
            variable.assign(value)
        stage = self.stage_of(epoch + 1)
        if self.verbose:
            print(f"staged schedule: reloaded {self.best_path}; stage {stage}: SGD lr {self.rates[stage]:.0e} "
                  f"from epoch {epoch + 2}", flush=True)


@SCHEDULES.register("staged")
def staged(cfg, adam_epochs=None, sgd_epochs=None, sgd_rates=(1e-3, 1e-4, 1e-5), best_path=None):
    """AMLAG / MTG baseline: Adam, then reload best + SGD at decreasing rates (needs optimizer adam_sgd)."""
    if best_path is None:
        raise ValueError("The `staged` schedule reloads the best checkpoint: it needs the run's best_path.")
    boundaries, rates = staged_boundaries(cfg.epochs, adam_epochs, sgd_epochs, sgd_rates)
    return [StagedOptimizer(best_path, cfg.lr, boundaries, rates, verbose=cfg.verbose > 0)]


def callbacks(cfg, best_path=None) -> list:
    """The callbacks of `cfg.schedule`, built with `cfg.schedule_options` (`best_path`: the run's best
    checkpoint, which the `staged` schedule reloads)."""
    return SCHEDULES.get(cfg.schedule)(cfg, **(cfg.schedule_options or {}), best_path=best_path)
