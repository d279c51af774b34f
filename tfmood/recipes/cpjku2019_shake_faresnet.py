"""CP-JKU 2019 run 1: Shake-Shake FA-ResNet with SWA and snapshot averaging (CP-JKU's best single system).

Source: Koutini et al., "Emotion and Theme Recognition in Music with Frequency-Aware RF-Regularized CNNs"
(seeds/002_7a5e6da71785d10d.txt, sections 3.3-4, Table 1 "ShakeFAResNet*"); Shake-Shake: Gastaldi 2017
(systems.md A4: no public code).

    python -m tfmood.train --recipe cpjku2019-shake-faresnet --data records/jamendo-cpjku --seed 0   # ... --seed 4
    python -m tfmood.train --recipe cpjku2019-shake-faresnet --smoke

Published (test, split 0): PR-AUC-macro 0.1480, ROC-AUC-macro 0.7717 (run 1, 5 models averaged). Run 3 (this
and run 2's models plus an RF-regularised ResNet and DenseNet): 0.1546 / 0.7729.

Settings: `shake_fa_resnet` (two branches per block mixed by per-sample alpha ~ U(0,1) forward and an
independent beta backward, 0.5 at test time: the standard Shake-Shake design, as no CP-JKU code is public),
rho 5 (the training scripts' default), 128 base channels; SWA from epoch 121 every 3 epochs; prediction =
best model + last 4 SWA snapshots.
{common}
Not reproduced: the 5-model average (use --seed 0..4 and `tfmood.ensemble`). `--smoke`: 8 base channels.
"""

from tfmood.recipes import _cpjku2019
from tfmood.recipes.base import Published, Setting, shrink
from tfmood.training.config import TrainConfig

__doc__ = __doc__.replace("{common}", _cpjku2019.DOC_COMMON.strip("\n"))

NAME = "cpjku2019-shake-faresnet"
PUBLISHED = Published(0.1480, 0.7717, "CP-JKU 2019 run 1 (1_shakefaresnet, 5-model ensemble)")
SHAKE = Setting("Shake-Shake", "per-sample alpha ~ U(0, 1) forward, independent beta backward, 0.5 at test",
                "neither", "no public CP-JKU Shake-Shake code: the standard design (Gastaldi 2017) [UNVERIFIED]")

SETTINGS = _cpjku2019.SETTINGS + (_cpjku2019.RHO_SETTING, _cpjku2019.SWA_SETTING, SHAKE)


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="shake_fa_resnet", model_options=dict(_cpjku2019.CP_OPTIONS), name=NAME,
                      **_cpjku2019.TRAINING, **_cpjku2019.SWA)
    if smoke:
        cfg = shrink(cfg, dict(_cpjku2019.SMOKE_CP_OPTIONS))
    return cfg
