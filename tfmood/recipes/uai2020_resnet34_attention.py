"""UAI-CNRL 2020: ResNet34 segment CNN + self-attention (AMLAG's framework with a ResNet34 backbone).

Source: Dipani et al., MediaEval 2020 working notes (seeds/003_a088934cc6cfbffe.txt, sections 3-5, Table 1);
public repo alishdipani/Multimediaeval2020-emotions-and-themes-inmusic (not consulted); framework: AMLAG 2019
(systems.md B6).

    python -m tfmood.train --recipe uai2020-resnet34-attention --data records/jamendo-mel
    python -m tfmood.train --recipe uai2020-resnet34-attention --smoke

Published (test, split 0): PR-AUC-macro 0.1275, ROC-AUC-macro 0.7360 (Table 1).

Settings (paper 4.1-4.3): MTG mel, random crop to 4096 frames (16 segments of 256); SpecAugment; mixup; 2 to 3
channels by two convolutions, a ResNet34 feature extractor and a conv layer per segment, then a self-attention
module of 2 layers x 4 heads: `attention_resnet34`; Adam lr 1e-4 (betas 0.9, 0.999) for 35 epochs; BCE.

[UNVERIFIED] and chosen here (the paper gives no more): AMLAG's wiring, widths, segment classifier and (att +
clf) / 2 prediction (the paper predicts with `att` only); mixup alpha 1 and AMLAG's SpecAugment settings;
batch 8 (AMLAG's); a constant learning rate (no schedule is mentioned: the plateau patience equals the epoch
count, so it never fires) and no early stopping (the best of the 35 epochs is kept); evaluation = mean of 3
evenly spaced crops. `--smoke`: ResNet34 width 8, 2 segments of 32 frames, a 32-wide transformer.
"""

from tfmood.recipes import _amlag2019
from tfmood.recipes.base import Published, shrink
from tfmood.training.config import TrainConfig

NAME = "uai2020-resnet34-attention"
PUBLISHED = Published(0.1275, 0.7360, "UAI-CNRL 2020")

EPOCHS = 35


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="attention_resnet34",
                      model_options=dict(width=64, segment_frames=_amlag2019.SEGMENT_FRAMES), name=NAME,
                      **_amlag2019.INPUT, mixup_alpha=1.0, mixup_mode="targets", loss="bce", optimizer="adam",
                      lr=1e-4, schedule="plateau", plateau_patience=EPOCHS, early_stopping_patience=EPOCHS,
                      epochs=EPOCHS, batch_size=8)
    if smoke:
        cfg = shrink(cfg, dict(width=8, **_amlag2019.SMOKE_ATTENTION), crop_frames=_amlag2019.SMOKE_CROP)
    return cfg
