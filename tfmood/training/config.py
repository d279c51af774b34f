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


# The demo run must show learning in a few minutes on a laptop CPU: short crops, a narrow network.
DEMO_OVERRIDES = dict(epochs=12, crop_frames=128, eval_segments=4, lr=3e-3,
                      model_options={"alpha": 0.35}, early_stopping_patience=6)
