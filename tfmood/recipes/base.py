"""What every recipe shares: the published-score record, where each setting comes from, data locations, frame
rates and the smoke shrink."""

import dataclasses

from tfmood.training.config import TrainConfig

# Converted records the full recipes read (tools/convert.py; tools/extract_wavenet.py for WaveNet features).
MTG_MEL = "records/jamendo-mel"
WAVENET = "records/jamendo-wavenet"

MTG_FPS = 12000 / 256      # MTG's distributed mel-spectrograms: 12 kHz, hop 256 -> 46.875 frames/s
WAVENET_FPS = 16000 / 512  # NSynth encoder: 16 kHz, average pool 512 -> 31.25 frames/s

# Smoke runs: the built-in demo data, one short epoch, tiny crops; export is left to the export tests.
SMOKE_CROP = 32
SMOKE = dict(data=None, epochs=1, batch_size=8, crops_per_track=1, eval_segments=2, export=False,
             early_stopping_patience=1, plateau_patience=1)


@dataclasses.dataclass(frozen=True)
class Published:
    """Official MediaEval test scores (MTG-Jamendo split 0) of the run a recipe reproduces."""

    pr_auc_macro: float
    roc_auc_macro: float = None    # None: the source does not give it for this run
    run: str = ""

    def line(self) -> str:
        roc = "  n/a " if self.roc_auc_macro is None else f"{self.roc_auc_macro:.4f}"
        return f"PR-AUC-macro {self.pr_auc_macro:.4f}  ROC-AUC-macro {roc}"


SOURCES = {  # where a recipe setting comes from (`Setting.source`)
    "code": "the system's public code",
    "paper": "the system's paper (the code differs or is not public)",
    "both": "code and paper agree",
    "neither": "tfmood's choice: the public material does not settle it, or tfmood deviates on purpose",
}


@dataclasses.dataclass(frozen=True)
class Setting:
    """One recipe setting, where it comes from (`SOURCES`) and, when it is not the code's, why."""

    what: str
    value: str
    source: str
    why: str = ""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"Setting {self.what!r}: source must be one of {sorted(SOURCES)}. "
                             f"Received: {self.source!r}")
        if self.source in ("paper", "neither") and not self.why:
            raise ValueError(f"Setting {self.what!r} ({self.source}) needs a `why`.")

    def line(self) -> str:
        return f"[{self.source}] {self.what}: {self.value}" + (f" -- {self.why}" if self.why else "")


def settings_markdown(name: str, settings) -> str:
    """The docs/recipes.md table of one recipe's settings."""
    rows = [f"#### `{name}`", "", "| setting | value | source | why |", "|---|---|---|---|"]
    rows += [f"| {s.what} | {s.value} | {s.source} | {s.why} |" for s in settings]
    return "\n".join(rows) + "\n"


def shrink(cfg: TrainConfig, model_options: dict, model: str = None, crop_frames: int = SMOKE_CROP,
           peer: str = None, peer_options: dict = None) -> TrainConfig:
    """`cfg` for a CI smoke run: demo data, 1 epoch, batch 8, `crop_frames` crops, 2 evaluation segments,
    tiny `model_options` (and `model`, where the recipe's model has no size option; `peer`, `peer_options`
    likewise for a co-teaching peer). The recipe's machinery (SWA, co-teaching, mixup mode, schedule, loss,
    augmentation) stays on, squeezed into the one epoch."""
    smoke = dict(SMOKE, crop_frames=crop_frames, model=model or cfg.model, model_options=model_options,
                 name=f"{cfg.name}-smoke", schedule_options={})  # schedules then scale to the 1-epoch run
    if cfg.swa_start is not None:  # collect after the only epoch; a 2-batch BN pass
        smoke.update(swa_start=1, swa_every=1, swa_bn_batches=2)
    if cfg.peer is not None:
        smoke.update(peer=peer or model or cfg.peer,
                     peer_options=peer_options if peer_options is not None else model_options,
                     forget_epochs=0)
    return dataclasses.replace(cfg, **smoke)
