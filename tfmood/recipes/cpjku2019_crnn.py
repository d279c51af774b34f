"""CP-JKU 2019 run 4: a CRNN after Choi et al. 2017 (CNN feature extractor, GRU temporal aggregator).

Source: Koutini et al. (seeds/002_7a5e6da71785d10d.txt, section 4.1 "CRNN", Table 1); Choi et al., "Convolutional
recurrent neural networks for music classification", ICASSP 2017; the run's code is gitlab.cp.jku.at/shreyan/
moodwalk (not public on GitHub, not read).

    python -m tfmood.train --recipe cpjku2019-crnn --data records/jamendo-cpjku-hop1536
    python -m tfmood.train --recipe cpjku2019-crnn --smoke

Published (test, split 0): PR-AUC-macro 0.1172, ROC-AUC-macro 0.7381 (run 4, a single model).

Settings: `crnn` (4 conv blocks of 64-128-128-128 channels, 2 x GRU(32)).
{common}
Runs 4-5 train on the paper's 25 % overlap input (hop 1536: records/jamendo-cpjku-hop1536).
[UNVERIFIED] for this run specifically: the CRNN's configuration (Choi's is used) and moodwalk's training code:
we use the paper's shared optimisation without SWA.
`--smoke`: 8 channels per block, GRU(8).
"""

from tfmood.recipes import _cpjku2019
from tfmood.recipes.base import Published, Setting, shrink
from tfmood.training.config import TrainConfig

__doc__ = __doc__.replace("{common}", _cpjku2019.DOC_COMMON.strip("\n"))

NAME = "cpjku2019-crnn"
PUBLISHED = Published(0.1172, 0.7381, "CP-JKU 2019 run 4 (4_crnn)")

SETTINGS = _cpjku2019.MOODWALK_SETTINGS + (
    Setting("model", "Choi's CRNN sizes (64-128-128-128 channels, 2 x GRU(32)); torch.nn.GRU-style gates (sigmoid, "
            "reset after the product), 'same' pools, no time padding", "neither",
            "moodwalk (PyTorch) is not public; Choi's Keras 1 code is the only public CRNN (`crnn.CHOI2017`: "
            "hard-sigmoid GRUs, reset before, 37-frame zero padding, valid pools); a PyTorch CRNN has "
            "torch.nn.GRU's gates [UNVERIFIED]"),
)


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="crnn", model_options=dict(channels=(64, 128, 128, 128), gru_units=32), name=NAME,
                      **_cpjku2019.TRAINING_RUNS_4_5)
    if smoke:
        cfg = shrink(cfg, dict(channels=(8, 8, 8, 8), gru_units=8))
    return cfg
