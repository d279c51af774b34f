"""AMLAG 2019 submission 2: MobileNetV2 segment CNN + self-attention over 16 segments, two-branch loss.

Source: Sukhavasi & Adapa, "Music theme recognition using CNN and self-attention" (arXiv 1911.07041; the system
UAI-CNRL 2020, seeds/003_a088934cc6cfbffe.txt, builds on); code sainathadapa/mediaeval-2019-moodtheme-detection
submission2/{model.py, self_attention.py, solver.py, dataloader.py, transforms.py} (systems.md B1-B5).

    python -m tfmood.train --recipe amlag2019-attention --data records/jamendo-mel
    python -m tfmood.train --recipe amlag2019-attention --smoke

Published (test, split 0): PR-AUC-macro 0.1259, ROC-AUC-macro 0.7529 (submission 2, official results tsv).

Settings: `attention_mobilenetv2` (ImageNet weights, torchvision's pretrained MobileNetV2): a 4096-frame crop is
cut into 16 segments of 256 frames, each through the 1->3 stem, MobileNetV2 and out_conv to a 256-d token; a
2-layer post-LN transformer (4 heads, FFN 1024) with a pooled token gives `att`, a per-segment classifier
averaged over segments gives `clf`; loss (BCE(att) + BCE(clf)) / 2, prediction (att + clf) / 2; SpecAugment
p=.5 (masks <= 15 % of bands, <= 20 % of frames); mixup alpha 1 with mixed targets; Adam 1e-4; batch 8;
120 epochs.

[UNVERIFIED] and chosen here: AMLAG's staged optimiser (Adam 1e-4 for 60 epochs, then reload the best model and
switch to SGD 1e-3 with Nesterov momentum, then 1e-4 and 1e-5 after 20 epochs each) has no equivalent in the
trainer yet: Adam 1e-4 with x0.1 after 5 epochs without gain stands in, with early stopping after 20; model
selection uses PR-AUC-macro of the combined score (AMLAG: ROC-AUC of `att`); evaluation = mean of 3 evenly spaced
4096-frame crops (AMLAG: the first 4096 frames, with its training transforms left on by a bug); 2 masks per
axis; RandomResizedCrop (p=.33, its central-crop fallback) not reproduced. `--smoke`: alpha 0.35, 2 segments of
32 frames, a 32-wide transformer.
"""

from tfmood.recipes import _amlag2019
from tfmood.recipes.base import Published, shrink
from tfmood.training.config import TrainConfig

NAME = "amlag2019-attention"
PUBLISHED = Published(0.1259, 0.7529, "AMLAG 2019 submission 2")


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="attention_mobilenetv2",
                      model_options=dict(imagenet=True, segment_frames=_amlag2019.SEGMENT_FRAMES), name=NAME,
                      **_amlag2019.INPUT, mixup_alpha=1.0, mixup_mode="targets", loss="bce", optimizer="adam",
                      lr=1e-4, schedule="plateau", plateau_patience=5, early_stopping_patience=20, epochs=120,
                      batch_size=8)
    if smoke:
        cfg = shrink(cfg, dict(alpha=0.35, **_amlag2019.SMOKE_ATTENTION), crop_frames=_amlag2019.SMOKE_CROP)
    return cfg
