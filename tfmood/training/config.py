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
    verbose: int = 2

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
        return self

    @property
    def run_name(self):
        return self.name or self.model


# The demo run must show learning in a few minutes on a laptop CPU: short crops, a narrow network.
DEMO_OVERRIDES = dict(epochs=12, crop_frames=128, eval_segments=4, lr=3e-3,
                      model_options={"alpha": 0.35}, early_stopping_patience=6)
