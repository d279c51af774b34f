"""MTG-Jamendo's official baseline: the VGG-ish fully convolutional network of Choi et al. 2016.

Source: MTG/mtg-jamendo-dataset scripts/baseline/{model.py, solver.py, main.py, data_loader.py} (systems.md F1);
Bogdanov et al., "MediaEval 2019: Emotion and Theme Recognition in Music Using Jamendo"; reproduced exactly by
the shipped predictions in shared/jamendo/results/ (mtg-jamendo.md section 4).

    python -m tfmood.train --recipe mtg-vggish-baseline --data records/jamendo-mel
    python -m tfmood.train --recipe mtg-vggish-baseline --smoke
    (MTG's trained weights: tools/import_mtg_baseline.py, no training needed)

Published (test, split 0): PR-AUC-macro 0.1077, ROC-AUC-macro 0.7258 (exactly 0.107734 / 0.725821 from MTG's
predictions).

Settings: `vggish`: BN on the input -> 5 x [conv 3x3 -> BN -> ELU -> max pool] (64-128-128-128-64 channels,
pools (2,4) (2,4) (2,4) (3,5) (4,4)) -> dropout .5 -> Dense 56 sigmoid; 96-band MTG mel in 29.1 s (1366-frame)
crops; BCE; batch 32; Adam 1e-4; no augmentation.

[UNVERIFIED] and chosen here: MTG's staged optimiser (Adam 1e-4 for 60 epochs, then reload the best model and
switch to SGD 1e-3 with Nesterov momentum, then 1e-4 and 1e-5 after 20 epochs each) has no equivalent in the
trainer yet: Adam 1e-4 with x0.1 after 10 epochs without gain stands in; n_epochs 500 (the code; the README says
1000) with early stopping after 20; model selection on PR-AUC-macro (MTG: ROC-AUC); MTG trains and evaluates on
the centred 29.1 s segment, tfmood on random crops of whole tracks and the mean of 3 evenly spaced crops.
`--smoke`: 8 channels per block.
"""

import math

from tfmood.recipes.base import MTG_MEL, Published, shrink
from tfmood.training.config import TrainConfig

NAME = "mtg-vggish-baseline"
PUBLISHED = Published(0.1077, 0.7258, "MTG VGG-ish baseline (MediaEval 2019)")

SEGMENT_SECONDS, SAMPLE_RATE, HOP = 29.1, 12000, 256
CROP = math.ceil(SEGMENT_SECONDS * SAMPLE_RATE / HOP) + 1  # Essentia's centred frames: ceil(N / hop) + 1 = 1366


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="vggish", model_options=dict(channels=(64, 128, 128, 128, 64), dropout=0.5), name=NAME,
                      data=MTG_MEL, crop_frames=CROP, crops_per_track=1,
                      eval_segments=3, loss="bce", optimizer="adam", lr=1e-4, batch_size=32, epochs=500,
                      schedule="plateau", plateau_patience=10, early_stopping_patience=20, spec_augment=False,
                      mixup_alpha=0.0)
    if smoke:
        cfg = shrink(cfg, dict(channels=(8, 8, 8, 8, 8), dropout=0.5))
    return cfg
