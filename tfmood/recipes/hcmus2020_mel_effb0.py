"""HCMUS 2020 run 2: EfficientNet-B0 on MTG mel-spectrograms with label balancing, SpecAugment and mixup.

Source: Do et al., "HCMUS at MediaEval 2020: Emotion Classification Using Wavenet Features with SpecAugment and
EfficientNet" (seeds/000_9213b5aaf4f10f2c.txt, Table 1 method C = run 2); code v-nhandt21/MediaEval2020
(systems.md D3).

    python -m tfmood.train --recipe hcmus2020-mel-effb0 --data records/jamendo-mel
    python -m tfmood.train --recipe hcmus2020-mel-effb0 --smoke          # CI-sized run on the demo data

Published (test, split 0): PR-AUC-macro 0.139 (run 2); the paper gives no ROC-AUC for this run. The team's best,
0.1414 / 0.7663 (run 4), averages this model (0.7) with the WaveNet EfficientNet-B7 (0.3): train both recipes
and combine them with `tfmood.ensemble`.

Settings: `efficientnet_b0` (ImageNet weights, as the code's `from_pretrained`) behind the 1->3 channel stem;
96-band MTG mel; one random 6950-frame crop per track per epoch (paper 3.2.2); SpecAugment on 70 % of the crops
with 2 time and 2 frequency masks (paper 3.3); mixup alpha 1 (mixed targets); labels reduced to one tag per
track (`label_balancing`); BCE; Adam 1e-3 with amsgrad; x0.1 after 5 epochs without gain; 120 epochs, early stop
after 25; batch 32.

[UNVERIFIED] and chosen here: mask widths (the WaveNet code's <= 10 % of bands, <= 15 % of frames); which tag is
"most significant" (the rarest); ReduceLROnPlateau and early stopping watch validation PR-AUC-macro, not the
validation loss of the code; evaluation = mean of 4 evenly spaced 6950-frame crops (the paper does not say);
the code's RandomResizedCrop (p=.33) is not reproduced. `--smoke`: EfficientNet has no width option, so a
MobileNetV2 at alpha 0.35 (the same stem and inverted-residual family) stands in.
"""

from tfmood.recipes import _hcmus2020
from tfmood.recipes.base import MTG_MEL, Published, shrink
from tfmood.training.config import TrainConfig

NAME = "hcmus2020-mel-effb0"
PUBLISHED = Published(0.139, None, "HCMUS 2020 run 2 (Table 1, method C)")


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="efficientnet_b0", model_options=dict(imagenet=True), data=MTG_MEL, name=NAME,
                      crop_frames=6950, crops_per_track=1, eval_segments=4,
                      spec_augment=dict(probability=0.7, time_masks=2, freq_masks=2, max_time_fraction=0.15,
                                        max_freq_fraction=0.1),
                      **_hcmus2020.TRAINING)
    if smoke:
        cfg = shrink(cfg, dict(alpha=0.35), model="mobilenetv2")
    return cfg
