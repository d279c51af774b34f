"""HCMUS 2020 run 3: EfficientNet-B7 on NSynth WaveNet-encoder features duplicated to 32 rows.

Source: Do et al., HCMUS at MediaEval 2020 (seeds/000_9213b5aaf4f10f2c.txt, Table 1 method E = run 3; run 4 =
0.7 x mel EfficientNet-B0 + 0.3 x this model); code v-nhandt21/MediaEval2020 (systems.md D1-D3).

    python -m tfmood.train --recipe hcmus2020-wavenet-effb7 --data records/jamendo-wavenet
    python -m tfmood.train --recipe hcmus2020-wavenet-effb7 --smoke      # 16-band demo (records/demo-wavenet)
    (records/jamendo-wavenet: see the hcmus2020-wavenet-mobilenetv2 recipe)

Published (test, split 0): PR-AUC-macro 0.105 (run 3); no ROC-AUC in the paper. Run 4 (ensemble with the mel
EfficientNet-B0): PR-AUC-macro 0.1414, ROC-AUC-macro 0.7663 (mtg-jamendo.md section 4).

Settings: `efficientnet_b7` with `duplicate_bands=2` (the code's `np.tile(features, (2, 1))`: 16 -> 32 rows,
"not large enough to fit EfficientNet-B7"), ImageNet weights and efficientnet_pytorch's static padding for 600 x 600
(`padding=600`, what `from_pretrained` builds for B7); one 30 s encoding per track (937 frames), used
whole; SpecAugment p=.7, 1 time mask (<= 15 %), 1 frequency mask (<= 10 %); mixup alpha 1; label balancing;
BCE; Adam 1e-3 with amsgrad; x0.1 after 5 epochs without a lower validation loss; the lowest validation
loss selects the model; 120 epochs, early stop after 25; batch 32; RandomResizedCrop (p=.33) on the 16 bands.

Deviation (settings table, `--list-recipes`): the repo builds EfficientNet-B6 with AdvProp weights while the
paper reports B7: the recipe follows the paper with Keras' standard ImageNet weights. `--smoke`: EfficientNet
has no width option, so a MobileNetV2 at alpha 0.35 (bands duplicated too) stands in.
"""

from tfmood.recipes import _hcmus2020
from tfmood.recipes.base import Published, Setting, shrink
from tfmood.training.config import TrainConfig

NAME = "hcmus2020-wavenet-effb7"
PUBLISHED = Published(0.105, None, "HCMUS 2020 run 3 (Table 1, method E)")

SETTINGS = _hcmus2020.WAVENET_SETTINGS + (
    Setting("model", "EfficientNet-B7, Keras' ImageNet weights", "paper",
            "the repo's WaveNetModel/main.py builds EfficientNet-B6 with AdvProp weights; the paper reports B7"),
    Setting("EfficientNet padding", "efficientnet_pytorch's static 'same' padding for B7's 600 x 600", "code",
            "the code's `from_pretrained` pads for the variant's image size: 600 for the paper's B7 (its B6 "
            "pads for 528)"),
)


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="efficientnet_b7", model_options=dict(duplicate_bands=2, imagenet=True, padding=600),
                      name=NAME,
                      **_hcmus2020.WAVENET_RUN, **_hcmus2020.TRAINING)
    if smoke:
        cfg = shrink(cfg, dict(alpha=0.35, duplicate_bands=2), model="mobilenetv2")
        cfg.demo_bands = _hcmus2020.SMOKE_BANDS
    return cfg
