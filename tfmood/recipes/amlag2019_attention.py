"""AMLAG 2019 submission 2: MobileNetV2 segment CNN + self-attention over 16 segments, two-branch loss.

Source: Sukhavasi & Adapa, "Music theme recognition using CNN and self-attention" (arXiv 1911.07041; the system
UAI-CNRL 2020, seeds/003_a088934cc6cfbffe.txt, builds on); code sainathadapa/mediaeval-2019-moodtheme-detection
submission2/{model.py, self_attention.py, solver.py, dataloader.py, transforms.py} (systems.md B1-B5).

    python -m tfmood.train --recipe amlag2019-attention --data records/jamendo-mel
    python -m tfmood.train --recipe amlag2019-attention --smoke

Published (test, split 0): PR-AUC-macro 0.1259, ROC-AUC-macro 0.7529 (submission 2, official results tsv).

Settings (solver.py, transforms.py): `attention_mobilenetv2` with `source="torchvision"` (the code's torchvision
MobileNetV2; ImageNet initialisation from Keras's weights, the code's are torchvision's): a 4096-frame crop is cut
into 16 segments of 256 frames, each through the 1->3 stem, MobileNetV2 and out_conv to a 256-d token; a 2-layer
post-LN transformer (4 heads, FFN 1024) with a pooled token gives `att`, a per-segment classifier averaged over
segments gives `clf`; loss (BCE(att) + BCE(clf)) / 2, prediction (att + clf) / 2. Training: RandomResizedCrop on a
third of the crops (its central 96 x 221 fallback, resized back), SpecAugment p=.5 (masks <= 15 % of bands, <= 20 %
of frames); mixup alpha 1 with mixed targets; batch 8; 120 epochs of the staged optimiser (`adam_sgd` + `staged`):
Adam 1e-4 for 60 epochs, then reload the best model and switch to SGD 1e-3 (Nesterov, momentum .9, weight decay
1e-4), reload best and 1e-4 after 20 more, reload best and 1e-5 after 20 more; no early stopping. Model selection:
validation ROC-AUC-macro of the attention branch (`monitor=val_att_ROC-AUC-macro`). Evaluation: the first 4096
frames of each track (`eval_segments=1`: the scoring protocol's single crop starts at frame 0).

Deviations (settings table, `--list-recipes`): AMLAG's validation and test also ran the random training
transforms (a bug: `get_audio_loader` always builds train=True); tfmood scores the clean first 4096 frames.
SpecAugment draws 2 masks per axis whose widths start at 0 (AMLAG: 1-2 masks). `--smoke`: alpha 0.35,
2 segments of 32 frames, a 32-wide transformer, the stages squeezed into one epoch.
"""

from tfmood.recipes import _amlag2019
from tfmood.recipes.base import Published, Setting, shrink
from tfmood.training.config import TrainConfig

NAME = "amlag2019-attention"
PUBLISHED = Published(0.1259, 0.7529, "AMLAG 2019 submission 2")
EPOCHS = 120

SETTINGS = (
    Setting("model", "MobileNetV2 (ImageNet) per 256-frame segment + 2-layer self-attention; two-branch loss, "
            "prediction (att + clf) / 2", "code"),
    Setting("MobileNetV2 implementation", "torchvision's (`source=\"torchvision\"`: symmetric stride-2 padding, "
            "BN eps 1e-5)", "code", "matched to torchvision 0.29 (tests/test_differential_torchvision.py)"),
    Setting("ImageNet weights", "keras.applications' ImageNet MobileNetV2 copied onto the torchvision network",
            "neither", "the code loads torchvision's pretrained weights (PyTorch; tfmood has no port of them): "
            "Keras's were trained with TF padding, so they are an ImageNet initialisation, not the same network"),
    Setting("input", "MTG 96-band mel, one random 4096-frame crop per track per epoch", "code"),
    Setting("RandomResizedCrop", "p .33, scale (0.8, 1.0), ratio (1.7, 2.3); on 96 x 4096 always the central "
            "96 x 221 fallback, resized back", "code"),
    Setting("SpecAugment", "p .5, 2 masks per axis, <= 15 % of bands, <= 20 % of frames, filled with the minimum",
            "neither", "AMLAG draws 1-2 masks; tfmood's SpecAugment has a fixed mask count whose widths may be 0"),
    Setting("mixup", "alpha 1, mixed targets", "code"),
    Setting("optimiser", "Adam 1e-4 for 60 epochs; reload best + SGD 1e-3 (Nesterov .9, wd 1e-4); reload best + "
            "1e-4 after 20; reload best + 1e-5 after 20; 120 epochs, no early stopping", "code"),
    Setting("model selection", "validation ROC-AUC-macro of the attention branch", "code"),
    Setting("evaluation", "the first 4096 frames of each track", "code",
            "without the training transforms that AMLAG's loader left on in validation and test (a bug)"),
    Setting("batch", "8", "code"),
)


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="attention_mobilenetv2",
                      model_options=dict(imagenet=True, source="torchvision",
                                         segment_frames=_amlag2019.SEGMENT_FRAMES), name=NAME,
                      **dict(_amlag2019.INPUT, eval_segments=1),
                      crop_transforms=[dict(_amlag2019.RANDOM_RESIZED_CROP)],
                      mixup_alpha=1.0, mixup_mode="targets", loss="bce", **_amlag2019.STAGED,
                      monitor="val_att_ROC-AUC-macro", early_stopping_patience=EPOCHS, epochs=EPOCHS, batch_size=8)
    if smoke:
        cfg = shrink(cfg, dict(alpha=0.35, source="torchvision", **_amlag2019.SMOKE_ATTENTION),
                     crop_frames=_amlag2019.SMOKE_CROP)
    return cfg
