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

The per-epoch schedules set the rate at the start of each epoch from the epoch index alone, so a run resumed
by `BackupAndRestore` gets the same rates as an uninterrupted one. Epochs are 0-based, as in CP-JKU's code.
"""

import keras

from tfmood.training.callbacks import MONITOR
from tfmood.registry import Registry

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
def plateau(cfg, factor=0.1, patience=None):
    """ReduceLROnPlateau on validation PR-AUC-macro: x0.1 after `plateau_patience` epochs without gain."""
    return [keras.callbacks.ReduceLROnPlateau(monitor=MONITOR, mode="max", factor=factor,
                                              patience=cfg.plateau_patience if patience is None else patience)]


@SCHEDULES.register("cpjku")
def cpjku(cfg, decay_start=None, decay_end=None, warmup=0, final_factor=0.01):
    """CP-JKU 2019: constant, linear decay, then lr0/100 (A5), scaled to `epochs` unless given."""
    decay_end = cfg.epochs if decay_end is None else decay_end
    decay_start = round(decay_end / 5) if decay_start is None else decay_start
    if not 0 <= warmup <= decay_start < decay_end:
        raise ValueError(f"cpjku needs 0 <= warmup <= decay_start < decay_end. Received: warmup={warmup}, "
                         f"decay_start={decay_start}, decay_end={decay_end}; use --epochs >= 2.")
    return [keras.callbacks.LearningRateScheduler(
        lambda epoch: cpjku_rate(epoch, cfg.lr, decay_start, decay_end, warmup, final_factor))]


@SCHEDULES.register("cosine")
def cosine(cfg, alpha=0.0):
    """Cosine decay over the run's epochs (per-epoch), down to `alpha * lr`."""
    return [keras.callbacks.LearningRateScheduler(lambda epoch: cosine_rate(epoch, cfg.lr, cfg.epochs, alpha))]


def callbacks(cfg) -> list:
    """The callbacks of `cfg.schedule`, built with `cfg.schedule_options`."""
    return SCHEDULES.get(cfg.schedule)(cfg, **(cfg.schedule_options or {}))
