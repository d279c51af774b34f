"""HCMUS 2020 method D: MobileNetV2 on 16-band NSynth WaveNet-encoder features.

Source: Do et al., HCMUS at MediaEval 2020 (seeds/000_9213b5aaf4f10f2c.txt, Table 1 method D, not submitted
alone; run 1 = 0.7 x run 2 + 0.3 x this model); code v-nhandt21/MediaEval2020 (systems.md D1-D3).

    python tools/extract_wavenet.py audio/ wavenet/ --checkpoint wavenet-ckpt/model.ckpt-200000
    python tools/convert.py --splits .../split-0 --features wavenet --features-root wavenet/ --out records/jamendo-wavenet
    python -m tfmood.train --recipe hcmus2020-wavenet-mobilenetv2 --data records/jamendo-wavenet
    python -m tfmood.train --recipe hcmus2020-wavenet-mobilenetv2 --smoke   # 16-band demo (records/demo-wavenet)

Published (test, split 0): PR-AUC-macro 0.102 (method D); no ROC-AUC published. Run 1 (ensemble with the mel
EfficientNet-B0): PR-AUC-macro 0.1413.

Settings: `mobilenetv2` (`source="torchvision"`, as AMLAG's notebook the code grew from; ImageNet
initialisation from Keras's weights) behind the 1->3 channel stem on the 16 WaveNet bands duplicated to
32 rows (`duplicate_bands=2`: the code tiles every WaveNet feature, D3, and keras' MobileNetV2 refuses fewer
than 32 rows); one 30 s encoding per track (937 frames at 31.25 frames/s),
used whole; SpecAugment p=.7 with 1 time mask (<= 15 %) and 1 frequency mask (<= 10 %) (transforms.py); mixup
alpha 1; label balancing; BCE; Adam 1e-3 with amsgrad; x0.1 after 5 epochs without a lower validation loss,
which also selects the model; 120 epochs, early stop after 25; batch 32.

Deviations (settings table, `--list-recipes`): ImageNet initialisation and the stem for this run (the repo
only shows EfficientNet); the 30 s window (tools/extract_wavenet.py takes the centre; HCMUS took a random
one: `--position random`). `--smoke`: MobileNetV2 at alpha 0.35, bands duplicated.
"""

from tfmood.recipes import _hcmus2020
from tfmood.recipes.base import Published, Setting, shrink
from tfmood.training.config import TrainConfig

NAME = "hcmus2020-wavenet-mobilenetv2"
PUBLISHED = Published(0.102, None, "HCMUS 2020 Table 1, method D")

SETTINGS = _hcmus2020.WAVENET_SETTINGS + (
    Setting("model", "MobileNetV2 (ImageNet) behind BN + two 1x1 convs to 3 channels", "neither",
            "method D is in the paper's Table 1 only; the repo shows EfficientNet runs [UNVERIFIED]"),
    Setting("MobileNetV2 implementation", "torchvision's (`source=\"torchvision\"`: symmetric stride-2 padding, "
            "BN eps 1e-5); ImageNet initialisation from keras.applications' weights", "neither",
            "the code is PyTorch and grew out of AMLAG's notebook, which runs torchvision's; the MobileNetV2 run "
            "itself is not published [UNVERIFIED]"),
)


def get_config(smoke=False) -> TrainConfig:
    cfg = TrainConfig(model="mobilenetv2", model_options=dict(duplicate_bands=2, imagenet=True, source="torchvision"),
                      name=NAME,
                      **_hcmus2020.WAVENET_RUN, **_hcmus2020.TRAINING)
    if smoke:
        cfg = shrink(cfg, dict(alpha=0.35, duplicate_bands=2, source="torchvision"))
        cfg.demo_bands = _hcmus2020.SMOKE_BANDS
    return cfg
