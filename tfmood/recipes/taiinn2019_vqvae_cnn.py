"""Taiinn 2019 run 4: frozen pre-trained VQ-VAE encoder + codebook, CNN classifier (the team's best run).

Source: Hung et al., "MediaEval 2019 Emotion and Theme Recognition task: A VQ-VAE Based Approach"
(seeds/004_8dd820b39c77c927.txt, sections 2.3-2.5, Table 2); code annahung31/moodtheme-tagging
src/{model.py, GRU_model.py} (systems.md E1, E2, E4).

    python -m tfmood.train --model vqvae --pretrain saved_models/vqvae.keras --data records/jamendo-mel
    python -m tfmood.train --recipe taiinn2019-vqvae-cnn --data records/jamendo-mel
    python -m tfmood.train --recipe taiinn2019-vqvae-cnn --smoke

Published (test, split 0): PR-AUC-macro 0.1077, ROC-AUC-macro 0.7207 (Table 2 "Run-4": CNN with the VQ-VAE
fixed; mtg-jamendo.md section 4).

Settings: `vqvae_cnn`: the codes as a 1-channel [D x h, time] image -> BN -> 5 x [conv 3x3 -> BN -> ELU ->
max pool] with 64-128-256-512-256 channels (the paper: Pons et al.'s CNN with halved channels) -> dropout .5 ->
Dense 56 -> BN -> sigmoid. Taiinn's flatten-to-1280 fits no input shape ([UNVERIFIED], systems.md E4): the
model ends in a global max pool instead.
{common}"""

from tfmood.recipes import _taiinn2019
from tfmood.recipes.base import Published, Setting, shrink
from tfmood.training.config import TrainConfig

__doc__ = __doc__.replace("{common}", _taiinn2019.DOC_COMMON.strip("\n"))

NAME = "taiinn2019-vqvae-cnn"
PUBLISHED = Published(0.1077, 0.7207, "Taiinn 2019 Run-4 (CNN, VQ-VAE fixed)")

SETTINGS = _taiinn2019.SETTINGS + (
    Setting("model", "5 conv blocks 64-128-256-512-256, dropout .5, global max pool, Dense 56 -> BN -> sigmoid",
            "neither", "Taiinn's flatten-to-1280 fits no input shape; a global max pool replaces it [UNVERIFIED]"),
)


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="vqvae_cnn", model_options=dict(_taiinn2019.ENCODER, channels=(64, 128, 256, 512, 256)),
                      name=NAME, **_taiinn2019.TRAINING)
    if smoke:
        cfg = shrink(cfg, dict(_taiinn2019.SMOKE_ENCODER, channels=(8, 8, 8, 8, 8)))
    return cfg
