"""MTG-Jamendo's official baseline: the VGG-ish fully convolutional network of Choi et al. 2016.

Source: MTG/mtg-jamendo-dataset scripts/baseline/{model.py, solver.py, main.py, data_loader.py} (systems.md F1);
Bogdanov et al., "MediaEval 2019: Emotion and Theme Recognition in Music Using Jamendo"; reproduced exactly by
the shipped predictions in shared/jamendo/results/ (mtg-jamendo.md section 4).

    python -m tfmood.train --recipe mtg-vggish-baseline --data records/jamendo-mel
    python -m tfmood.train --recipe mtg-vggish-baseline --smoke
    (MTG's trained weights: tools/import_mtg_baseline.py, no training needed)

Published (test, split 0): PR-AUC-macro 0.1077, ROC-AUC-macro 0.7258 (exactly 0.107734 / 0.725821 from MTG's
predictions).

Settings (solver.py): `vggish`: BN on the input -> 5 x [conv 3x3 -> BN -> ELU -> max pool] (64-128-128-128-64
channels, pools (2,4) (2,4) (2,4) (3,5) (4,4)) -> dropout .5 -> Dense 56 sigmoid; 96-band MTG mel in 29.1 s
(1366-frame) crops; BCE; batch 32; no augmentation; the staged optimiser (`adam_sgd` + `staged`): Adam 1e-4
for 60 epochs, then reload the best model and switch to SGD 1e-3 (Nesterov, momentum .9, weight decay 1e-4),
reload best and 1e-4 after 20 more; `n_epochs` is hard-coded to 100 in `Solver.__init__` (the README's
"1000 epochs" is not what the script runs), so the third rate (1e-5, set after epoch 100) never trains; no
early stopping; model selection on validation ROC-AUC-macro.

Deviation (settings table, `--list-recipes`): MTG trains and evaluates on the centred 29.1 s segment of each
track (its npy files hold only that), tfmood on random 1366-frame crops of whole tracks and the mean of 3
evenly spaced crops. `--smoke`: 8 channels per block.
"""

import math

from tfmood.recipes import _amlag2019
from tfmood.recipes.base import MTG_MEL, Published, Setting, shrink
from tfmood.training.config import TrainConfig

NAME = "mtg-vggish-baseline"
PUBLISHED = Published(0.1077, 0.7258, "MTG VGG-ish baseline (MediaEval 2019)")

SEGMENT_SECONDS, SAMPLE_RATE, HOP = 29.1, 12000, 256
CROP = math.ceil(SEGMENT_SECONDS * SAMPLE_RATE / HOP) + 1  # Essentia's centred frames: ceil(N / hop) + 1 = 1366
EPOCHS = 100  # solver.py: self.n_epochs = 100 (main.py passes no epoch count)

SETTINGS = (
    Setting("model", "VGG-ish FCN, 64-128-128-128-64 channels, dropout .5", "code"),
    Setting("input", "MTG 96-band mel, 1366-frame (29.1 s) crops", "code"),
    Setting("crop position", "a random crop of the whole track per epoch; evaluation: mean of 3 evenly spaced crops",
            "neither", "MTG's npy files hold only the centred 29.1 s; tfmood's records hold whole tracks"),
    Setting("optimiser", "Adam 1e-4 for 60 epochs; reload best + SGD 1e-3 (Nesterov .9, wd 1e-4); reload best + "
            "1e-4 after 20; (1e-5 after 20 more, past the last epoch)", "code"),
    Setting("epochs", "100, no early stopping", "code", "n_epochs is hard-coded in Solver.__init__"),
    Setting("model selection", "validation ROC-AUC-macro", "code"),
    Setting("loss, batch, augmentation", "BCE, 32, none", "code"),
)


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="vggish", model_options=dict(channels=(64, 128, 128, 128, 64), dropout=0.5), name=NAME,
                      data=MTG_MEL, crop_frames=CROP, crops_per_track=1,
                      eval_segments=3, loss="bce", **_amlag2019.STAGED, batch_size=32, epochs=EPOCHS,
                      monitor="val_ROC-AUC-macro", early_stopping_patience=EPOCHS, spec_augment=False,
                      mixup_alpha=0.0)
    if smoke:
        cfg = shrink(cfg, dict(channels=(8, 8, 8, 8, 8), dropout=0.5))
    return cfg
