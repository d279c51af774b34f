"""CP-JKU 2019 run 5: a vanilla ResNet-34 baseline (it beat ResNet-18 and -50 on validation).

Source: Koutini et al. (seeds/002_7a5e6da71785d10d.txt, section 4.1 "ResNet34", Table 1); the run's code is
gitlab.cp.jku.at/shreyan/moodwalk (not public on GitHub, not read; systems.md A).

    python -m tfmood.train --recipe cpjku2019-resnet34 --data records/jamendo-cpjku-hop1536
    python -m tfmood.train --recipe cpjku2019-resnet34 --smoke

Published (test, split 0): PR-AUC-macro 0.1021, ROC-AUC-macro 0.7168 (run 5, a single model).

Settings: `resnet34` (basic blocks [3, 4, 6, 3], 64 channels in the first stage) on 1-channel mel-spectrograms.
{common}
Runs 4-5 train on the paper's 25 % overlap input (hop 1536: records/jamendo-cpjku-hop1536).
[UNVERIFIED] for this run specifically: moodwalk's training code; we give them the paper's shared optimisation (section 2.2) without SWA (not marked as an ensemble in Table 1).
`--smoke`: first-stage width 8.
"""

from tfmood.recipes import _cpjku2019
from tfmood.recipes.base import Published, shrink
from tfmood.training.config import TrainConfig

__doc__ = __doc__.replace("{common}", _cpjku2019.DOC_COMMON.strip("\n"))

NAME = "cpjku2019-resnet34"
PUBLISHED = Published(0.1021, 0.7168, "CP-JKU 2019 run 5 (5_resnet34)")

SETTINGS = _cpjku2019.MOODWALK_SETTINGS


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="resnet34", model_options=dict(width=64), name=NAME, **_cpjku2019.TRAINING_RUNS_4_5)
    if smoke:
        cfg = shrink(cfg, dict(width=8))
    return cfg
