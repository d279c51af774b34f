"""CP-JKU 2019 run 2: frequency-aware RF-regularised ResNet (FA-ResNet) with SWA and snapshot averaging.

Source: Koutini et al., "Emotion and Theme Recognition in Music with Frequency-Aware RF-Regularized CNNs"
(seeds/002_7a5e6da71785d10d.txt, sections 2-4, Table 1 "FAResNet*"); code kkoutini/cpjku_dcase19
models/cp_faresnet.py, trainer.py (systems.md A1-A3, A5-A6).

    python -m tfmood.train --recipe cpjku2019-faresnet --data records/jamendo-cpjku --seed 0   # ... --seed 4
    python -m tfmood.train --recipe cpjku2019-faresnet --smoke

Published (test, split 0): PR-AUC-macro 0.1463, ROC-AUC-macro 0.7575 (run 2, an average of 5 FA-ResNets with
different initialisations and time receptive fields, each with snapshot averaging).

Settings: `fa_resnet`, rho 5 (the training scripts' default), 128 base channels; SWA from epoch 121 every
3 epochs, prediction = the best model averaged with the last 4 SWA snapshots (paper 3.4).
{common}
Not reproduced: the 5-model average (train with --seed 0..4 and average their predictions with `tfmood.ensemble`;
the paper varies the time receptive field too, [UNVERIFIED] how). `--smoke`: 8 base channels.
"""

from tfmood.recipes import _cpjku2019
from tfmood.recipes.base import Published, shrink
from tfmood.training.config import TrainConfig

__doc__ = __doc__.replace("{common}", _cpjku2019.DOC_COMMON.strip("\n"))

NAME = "cpjku2019-faresnet"
PUBLISHED = Published(0.1463, 0.7575, "CP-JKU 2019 run 2 (2_faresnet, 5-model ensemble)")

SETTINGS = _cpjku2019.SETTINGS + (_cpjku2019.RHO_SETTING, _cpjku2019.SWA_SETTING)


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="fa_resnet", model_options=dict(_cpjku2019.CP_OPTIONS), name=NAME,
                      **_cpjku2019.TRAINING, **_cpjku2019.SWA)
    if smoke:
        cfg = shrink(cfg, dict(_cpjku2019.SMOKE_CP_OPTIONS))
    return cfg
