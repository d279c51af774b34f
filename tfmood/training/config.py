"""Training configuration: a typed dataclass validated at the boundary."""

import dataclasses


@dataclasses.dataclass
class TrainConfig:
    model: str = "mobilenetv2"
    model_options: dict = dataclasses.field(default_factory=dict)
    data: str = None                 # converted records folder; None = the built-in demo dataset
    epochs: int = 30
    batch_size: int = 32             # global batch, split across replicas
    crop_frames: int = 960
    crops_per_track: int = None      # None: one crop per crop_frames of audio
    eval_segments: int = 16
    lr: float = 1e-3
    seed: int = 0
    out: str = "runs"
    name: str = None                 # run name (default: the model name)
    spec_augment: bool = True
    mixup_alpha: float = 0.0
    label_balancing: bool = False
    early_stopping_patience: int = 10
    plateau_patience: int = 5
    export_dir: str = "saved_models"
    export: bool = True
    records_root: str = "records"
    demo_bands: int = 96             # built-in demo used when data is None: 96 mel bands, or 16 (WaveNet-shaped)
    verbose: int = 2
    # SWA (CP-JKU): collect from 1-based epoch swa_start every swa_every epochs; None disables it.
    swa_start: int = None
    swa_every: int = 3
    swa_keep: int = 4                # SWA snapshots kept for prediction averaging
    swa_bn_batches: int = None       # cap on the BN recomputation pass (None: one full pass, as CP-JKU)
    deterministic: bool = False      # op determinism + deterministic tf.data (slower), with `seed`
    mixed_precision: bool = None     # None: on when a GPU is present
    xla: bool = None                 # None: Keras' default (XLA on GPU, not on CPU)
    # Losses, schedules, optimizers (tfmood.training.{losses,schedules,optimizers} registries) and co-teaching.
    loss: str = "bce"
    mixup_mode: str = "targets"      # "targets": mix the labels; "losses": CP-JKU's mixed losses (needs mixup_alpha)
    schedule: str = "plateau"
    schedule_options: dict = dataclasses.field(default_factory=dict)
    optimizer: str = "adam"
    weight_decay: float = None       # None: the optimizer's default (adamw 1e-2, others 0)
    amsgrad: bool = False
    peer: str = None                 # co-teaching peer model; None trains one model
    peer_options: dict = None        # None: model_options when peer == model, else {}
    forget_rate: float = 0.05        # co-teaching: final fraction of each batch left out
    forget_epochs: int = 10          # epochs of the linear 0 -> forget_rate ramp; 0 = constant
    # Model selection: the validation figure best.keras keeps the best of (also early stopping's and the plateau
    # schedule's, and what the staged schedule reloads). `val_att_...`/`val_clf_...`: one branch of a two-branch
    # tagger (AMLAG selected on the attention branch's ROC-AUC); `val_loss` is minimised, the AUCs maximised.
    monitor: str = "val_PR-AUC-macro"
    # Recipe-specific crop transforms (tfmood.data.recipe_augment), applied to training batches before
    # SpecAugment, e.g. [{"name": "time_roll", "max_shift": 50}]; evaluation never sees them.
    crop_transforms: list = dataclasses.field(default_factory=list)
    standardize: str = None          # "bands": per-band mean/std of the training split (CP-JKU), None: raw
    data_service: str = None         # grpc://HOST:PORT of a tf.data service dispatcher: its workers make the batches
    # Where training batches are augmented (tfmood.data.deferred): "pipeline" (tf.data, on the CPU), "device" (in
    # the training step, on the accelerator: the pipeline only reads crops and draws), "auto": device on a GPU.
    augment_on: str = "auto"

    def validate(self):
        positive = ("epochs", "batch_size", "crop_frames", "eval_segments")
        for field in positive:
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{field}` must be an integer >= 1. Received: {value!r}")
        if not self.lr > 0:
            raise ValueError(f"`lr` must be > 0. Received: {self.lr!r}")
        if self.mixup_alpha < 0:
            raise ValueError(f"`mixup_alpha` must be >= 0 (0 disables mixup). Received: {self.mixup_alpha!r}")
        validate_methods(self)
        validate_selection(self)
        from tfmood.data.deferred import resolve_mode
        resolve_mode(self.augment_on)
        if self.data_service:
            from tfmood.data_service import address
            address(self.data_service)
        from tfmood.training.swa import check_options
        check_options(self)
        return self

    @property
    def run_name(self):
        return self.name or self.model


def validate_methods(cfg):
    """Loss, schedule, optimizer, mixup mode and co-teaching options; unknown names list the known ones."""
    from tfmood.training import losses, optimizers, schedules
    losses.LOSSES.get(cfg.loss), schedules.SCHEDULES.get(cfg.schedule), optimizers.OPTIMIZERS.get(cfg.optimizer)
    if cfg.mixup_mode not in ("targets", "losses"):
        raise ValueError(f"`mixup_mode` must be 'targets' or 'losses'. Received: {cfg.mixup_mode!r}")
    if cfg.mixup_mode == "losses" and not cfg.mixup_alpha > 0:
        raise ValueError("`mixup_mode='losses'` needs mixup: set `mixup_alpha` > 0 (CP-JKU used 0.3).")
    if not 0 <= cfg.forget_rate < 1:
        raise ValueError(f"`forget_rate` must be in [0, 1). Received: {cfg.forget_rate!r}")
    if not isinstance(cfg.forget_epochs, int) or cfg.forget_epochs < 0:
        raise ValueError(f"`forget_epochs` must be an integer >= 0. Received: {cfg.forget_epochs!r}")
    if cfg.weight_decay is not None and cfg.weight_decay < 0:
        raise ValueError(f"`weight_decay` must be >= 0. Received: {cfg.weight_decay!r}")


MONITOR_FIGURES = ("loss", "PR-AUC-macro", "ROC-AUC-macro", "PR-AUC-micro", "ROC-AUC-micro")
MONITOR_BRANCHES = ("att", "clf")   # tfmood.models.dual_branch.BRANCHES


def monitors() -> list:
    """Every figure `TrackEvaluation` can log: `val_<figure>` and, for two-branch taggers, `val_<branch>_<figure>`."""
    return [f"val_{p}{f}" for p in ("", *(b + "_" for b in MONITOR_BRANCHES)) for f in MONITOR_FIGURES]


def monitor_mode(monitor: str) -> str:
    """"min" for losses, "max" for the AUCs."""
    return "min" if monitor.endswith("loss") else "max"


def monitor_branch(monitor: str):
    """The branch a monitor names (`val_att_ROC-AUC-macro` -> "att"), else None."""
    return next((b for b in MONITOR_BRANCHES if monitor.startswith(f"val_{b}_")), None)


def validate_selection(cfg):
    """Model selection, standardisation, the staged optimiser's pairing and crop transforms."""
    if cfg.monitor not in monitors():
        raise ValueError(f"`monitor` must be one of {', '.join(monitors())}. Received: {cfg.monitor!r}")
    if monitor_branch(cfg.monitor) and cfg.peer:
        raise ValueError(f"`monitor={cfg.monitor!r}` names a branch of a two-branch tagger; a co-teaching pair "
                         "has none.")
    if cfg.standardize not in (None, "bands"):
        raise ValueError(f"`standardize` must be None or 'bands'. Received: {cfg.standardize!r}")
    if (cfg.schedule == "staged") != (cfg.optimizer == "adam_sgd"):
        raise ValueError("The `staged` schedule and the `adam_sgd` optimizer go together (AMLAG / MTG baseline: "
                         f"Adam, then SGD). Received: schedule={cfg.schedule!r}, optimizer={cfg.optimizer!r}.")
    from tfmood.data import recipe_augment
    recipe_augment.check(cfg.crop_transforms)


# The demo run must show learning in a few minutes on a laptop CPU: short crops, a narrow network, and few
# epochs of small batches (16 takes twice the updates of 32 for the same compute: PR-AUC ~0.7 in 6 epochs, where
# 32 needed ~8; BENCHMARKS.md "Demo run").
DEMO_OVERRIDES = dict(epochs=6, batch_size=16, crop_frames=128, eval_segments=4, lr=3e-3,
                      model_options={"alpha": 0.35}, early_stopping_patience=6)
