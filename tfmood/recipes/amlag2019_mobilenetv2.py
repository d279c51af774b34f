"""AMLAG 2019 submission 1: MobileNetV2 on whole 6590-frame mel crops (no segments, no attention).

Source: Sukhavasi & Adapa, "Music theme recognition using CNN and self-attention" (arXiv 1911.07041; the system
UAI-CNRL 2020, seeds/003_a088934cc6cfbffe.txt, builds on); code sainathadapa/mediaeval-2019-moodtheme-detection
submission1/{main.ipynb, transforms.py} (systems.md B5).

    python -m tfmood.train --recipe amlag2019-mobilenetv2 --data records/jamendo-mel
    python -m tfmood.train --recipe amlag2019-mobilenetv2 --smoke

Published (test, split 0): PR-AUC-macro 0.1183, ROC-AUC-macro 0.7324 (submission 1, official results tsv).

Settings (main.ipynb): `mobilenetv2` with `source="torchvision"` (the code's torchvision MobileNetV2; ImageNet
initialisation from Keras's weights, the code's are torchvision's) behind
BN + two 1x1 convs to 3 channels, global average pooling, dropout 0.2 and a linear layer (`dropout=0.2`); one
random 6590-frame crop per track per epoch; RandomResizedCrop on a third of the crops (transforms.py, its
fallback), SpecAugment p=.5 (masks <= 15 % of bands, <= 20 % of frames); mixup alpha 1 with mixed targets; BCE;
Adam 1e-3 with amsgrad; x0.1 after 5 epochs without a lower validation loss; the lowest validation loss selects
the model; 100 epochs, early stop after 25; batch 4. HCMUS 2020's pipeline (the hcmus2020 recipes) grew out of
this notebook.

Deviations (settings table, `--list-recipes`): the test predictions of the notebook take each tag from the epoch
with that tag's lowest validation loss (56 checkpoints); tfmood keeps the single best model. The notebook scores
the centre 6590 frames; tfmood averages 4 evenly spaced crops. ImageNet weights: keras.applications' copied
onto the torchvision-layout network (torchvision's own are PyTorch). `--smoke`: MobileNetV2 at alpha 0.35.
"""

from tfmood.recipes import _amlag2019
from tfmood.recipes.base import MTG_MEL, Published, Setting, shrink
from tfmood.training.config import TrainConfig

NAME = "amlag2019-mobilenetv2"
PUBLISHED = Published(0.1183, 0.7324, "AMLAG 2019 submission 1")
CROP = 6590  # main.ipynb get_transforms(size=6590)

SETTINGS = (
    Setting("model", "MobileNetV2 (ImageNet) behind BN + two 1x1 convs to 3 channels; mean pool, dropout .2, "
            "linear", "code"),
    Setting("MobileNetV2 implementation", "torchvision's (`source=\"torchvision\"`: symmetric stride-2 padding, "
            "BN eps 1e-5)", "code", "matched to torchvision 0.29 (tests/test_differential_torchvision.py)"),
    Setting("ImageNet weights", "keras.applications' ImageNet MobileNetV2 copied onto the torchvision network",
            "neither", "the code loads torchvision's pretrained weights (PyTorch; tfmood has no port of them): "
            "Keras's were trained with TF padding, so they are an ImageNet initialisation, not the same network"),
    Setting("input", "MTG 96-band mel, one random 6590-frame crop per track per epoch", "code"),
    Setting("RandomResizedCrop", "p .33, scale (0.8, 1.0), ratio (1.7, 2.3), central fallback", "code"),
    Setting("SpecAugment", "p .5, 2 masks per axis, <= 15 % of bands, <= 20 % of frames, filled with the minimum",
            "neither", "the code draws 1-2 masks; tfmood's SpecAugment has a fixed mask count whose widths may be 0"),
    Setting("mixup", "alpha 1, mixed targets", "code"),
    Setting("optimiser", "Adam 1e-3 with amsgrad; x0.1 after 5 epochs without a lower validation loss", "code"),
    Setting("model selection, early stopping", "lowest validation loss; stop after 25 epochs without one; "
            "100 epochs", "code"),
    Setting("test predictions", "the single best model", "neither",
            "the notebook predicts each tag with the checkpoint of that tag's lowest validation loss"),
    Setting("evaluation", "mean of 4 evenly spaced 6590-frame crops", "neither",
            "the notebook scores the centre crop; tfmood's protocol spaces crops evenly"),
    Setting("loss, batch", "BCE, 4", "code"),
)


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="mobilenetv2", model_options=dict(imagenet=True, dropout=0.2, source="torchvision"),
                      data=MTG_MEL, name=NAME,
                      crop_frames=CROP, crops_per_track=1, eval_segments=4,
                      spec_augment=dict(probability=0.5, time_masks=2, freq_masks=2, max_time_fraction=0.2,
                                        max_freq_fraction=0.15),
                      crop_transforms=[dict(_amlag2019.RANDOM_RESIZED_CROP)],
                      mixup_alpha=1.0, mixup_mode="targets", loss="bce", optimizer="adam", lr=1e-3, amsgrad=True,
                      schedule="plateau", plateau_patience=5, monitor="val_loss", early_stopping_patience=25,
                      epochs=100, batch_size=4)
    if smoke:
        cfg = shrink(cfg, dict(alpha=0.35, dropout=0.2, source="torchvision"))
    return cfg
