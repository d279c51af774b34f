"""UAI-CNRL 2020: ResNet34 segment CNN + self-attention (AMLAG's framework with a ResNet34 backbone).

Source: Dipani et al., MediaEval 2020 working notes (seeds/003_a088934cc6cfbffe.txt, sections 3-5, Table 1);
public repo alishdipani/Multimediaeval2020-emotions-and-themes-inmusic (not consulted); framework: AMLAG 2019
(systems.md B6).

    python -m tfmood.train --recipe uai2020-resnet34-attention --data records/jamendo-mel
    python -m tfmood.train --recipe uai2020-resnet34-attention --smoke

Published (test, split 0): PR-AUC-macro 0.1275, ROC-AUC-macro 0.7360 (Table 1).

Settings (paper 4.1-4.3): MTG mel, random crop to 4096 frames (16 segments of 256); SpecAugment; mixup; 2 to 3
channels by two convolutions, a ResNet34 feature extractor and a conv layer per segment, then a self-attention
module of 2 layers x 4 heads: `attention_resnet34`; both branches in the loss, predictions from the attention
branch only (section 4.2); Adam lr 1e-4 (betas 0.9, 0.999) for 35 epochs; BCE.

The paper gives no more; the rest is AMLAG's framework (settings table, `--list-recipes`): its wiring,
widths and segment classifier; mixup alpha 1 and AMLAG's SpecAugment settings; batch 8; a constant learning
rate (no schedule is mentioned: the plateau patience equals the epoch count, so it never fires) and no early
stopping (the best of the 35 epochs is kept); evaluation = mean of 3 evenly spaced crops. `--smoke`: ResNet34
width 8, 2 segments of 32 frames, a 32-wide transformer.
"""

from tfmood.recipes import _amlag2019
from tfmood.recipes.base import Published, Setting, shrink
from tfmood.training.config import TrainConfig

NAME = "uai2020-resnet34-attention"
PUBLISHED = Published(0.1275, 0.7360, "UAI-CNRL 2020")

EPOCHS = 35

SETTINGS = (
    Setting("input", "MTG mel, a random 4096-frame crop = 16 segments of 256 frames", "paper",
            "the team's code (alishdipani/...) was not consulted"),
    Setting("model", "2 convolutions to 3 channels, ResNet34 and a reducing convolution per segment; 2-layer, "
            "4-head self-attention; both branches in the loss, predictions from the attention branch", "paper",
            "the paper (4.1-4.3) describes it"),
    Setting("widths, dropout, segment classifier", "AMLAG's", "neither", "not published [UNVERIFIED]"),
    Setting("optimiser", "Adam 1e-4 (betas .9, .999), constant, 35 epochs, no early stopping", "paper",
            "the paper names no schedule"),
    Setting("augmentation", "SpecAugment and mixup with AMLAG's settings (alpha 1; p .5, 2 masks)", "neither",
            "the paper names SpecAugment and mixup without settings [UNVERIFIED]"),
    Setting("loss, batch, model selection, evaluation", "BCE; 8; validation PR-AUC-macro; mean of 3 evenly spaced "
            "crops", "neither", "BCE is the paper's; the rest is not published [UNVERIFIED]"),
)


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="attention_resnet34",
                      model_options=dict(width=64, segment_frames=_amlag2019.SEGMENT_FRAMES), name=NAME,
                      **_amlag2019.INPUT, mixup_alpha=1.0, mixup_mode="targets", loss="bce", optimizer="adam",
                      lr=1e-4, schedule="plateau", plateau_patience=EPOCHS, early_stopping_patience=EPOCHS,
                      epochs=EPOCHS, batch_size=8)
    if smoke:
        cfg = shrink(cfg, dict(width=8, **_amlag2019.SMOKE_ATTENTION), crop_frames=_amlag2019.SMOKE_CROP)
    return cfg
