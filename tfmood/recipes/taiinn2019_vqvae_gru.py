"""Taiinn 2019 run 2: frozen pre-trained VQ-VAE encoder + codebook, BiGRU classifier.

Source: Hung et al., "MediaEval 2019 Emotion and Theme Recognition task: A VQ-VAE Based Approach"
(seeds/004_8dd820b39c77c927.txt, sections 2.3-2.5, Table 2); code annahung31/moodtheme-tagging
src/{model.py, GRU_model.py, VQ_module_function.py} (systems.md E1-E3).

    python -m tfmood.train --model vqvae --pretrain saved_models/vqvae.keras --data records/jamendo-mel
    python -m tfmood.train --recipe taiinn2019-vqvae-gru --data records/jamendo-mel
    python -m tfmood.train --recipe taiinn2019-vqvae-gru --smoke

Published (test, split 0): PR-AUC-macro 0.1037, ROC-AUC-macro 0.7141 (the paper's Table 2 "Run-2": GRU with
the VQ-VAE fixed; Run-1, updating the VQ-VAE too, scored 0.0984 / 0.7103). systems.md lists runs 2 and 3 the
other way round; both readings give the best GRU run as 0.1037 / 0.7141.

Settings: `vqvae_gru`: z_q as a sequence over time -> 2-layer BiGRU(256, dropout .3) -> LayerNorm ->
2-layer BiGRU(256) -> LayerNorm'd final states -> Dense 512 -> 256 (dropout .05, ReLU) -> 56 sigmoid.
{common}"""

from tfmood.recipes import _taiinn2019
from tfmood.recipes.base import SMOKE_CROP, Published, Setting, shrink
from tfmood.training.config import TrainConfig

__doc__ = __doc__.replace("{common}", _taiinn2019.DOC_COMMON.strip("\n"))

NAME = "taiinn2019-vqvae-gru"
PUBLISHED = Published(0.1037, 0.7141, "Taiinn 2019 Run-2 (GRU, VQ-VAE fixed)")

SETTINGS = _taiinn2019.SETTINGS + (
    Setting("model", "2 x BiGRU(256) with layer norms, Dense 512 -> 256 -> 56", "code"),
    Setting("layer norm", "the first BiGRU's output normalised jointly over (time, features) (`joint_norm_steps`: "
            "crop / 2 steps); the model then takes exactly crop-length inputs", "code",
            "LayerNorm((512, 512)) in the original; `joint_norm_steps=None` normalises per time step"),
)


def get_config(smoke=False) -> TrainConfig:
    # The encoder halves time once (1024 frames -> 512 codes): the original's LayerNorm((512, 512)).
    cfg = TrainConfig(model="vqvae_gru", model_options=dict(_taiinn2019.ENCODER, units=256, dense=(512, 256),
                                                            joint_norm_steps=_taiinn2019.CROP // 2),
                      name=NAME, **_taiinn2019.TRAINING)
    if smoke:
        cfg = shrink(cfg, dict(_taiinn2019.SMOKE_ENCODER, units=8, dense=(16, 16),
                               joint_norm_steps=SMOKE_CROP // 2))
    return cfg
