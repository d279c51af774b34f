"""Settings shared by the HCMUS 2020 recipes (seeds/000_9213b5aaf4f10f2c.txt; v-nhandt21/MediaEval2020, systems.md D3)."""

from tfmood.recipes import _amlag2019
from tfmood.recipes.base import WAVENET, WAVENET_FPS, Setting

# Code (SourceCode/WaveNetModel/main.py): BCEWithLogits, Adam 1e-3 with amsgrad, ReduceLROnPlateau(patience 5)
# on the validation loss, the lowest validation loss kept as the model, early stop after 25 epochs without a new
# lowest, 120 epochs, batch 32, mixup alpha 1; get_transforms: RandomResizedCrop p=.33 before SpecAugment;
# paper 3.2.1: labels reduced to the track's most significant tag, which tfmood reads as the rarest one
# (`label_balancing`, an unpublished rule).
TRAINING = dict(loss="bce", optimizer="adam", lr=1e-3, amsgrad=True, schedule="plateau", plateau_patience=5,
                epochs=120, early_stopping_patience=25, batch_size=32, mixup_alpha=1.0, mixup_mode="targets",
                label_balancing=True, monitor="val_loss",
                crop_transforms=[dict(_amlag2019.RANDOM_RESIZED_CROP)])

SETTINGS = (
    Setting("optimiser", "Adam 1e-3 with amsgrad; x0.1 after 5 epochs without a lower validation loss", "code"),
    Setting("model selection, early stopping", "lowest validation loss; stop after 25 epochs without one", "code"),
    Setting("epochs", "120", "code"),
    Setting("mixup", "alpha 1, mixed targets", "code"),
    Setting("label balancing", "each track's rarest tag only", "neither",
            "the paper reduces labels to the 'most significant' tag without saying which [UNVERIFIED]"),
)

# WaveNet runs: one 30 s NSynth encoding per track (937 frames of 16 bands, paper 3.2.2), used whole.
WAVENET_SECONDS = 30
WAVENET_RUN = dict(data=WAVENET, crop_frames=int(WAVENET_SECONDS * WAVENET_FPS), crops_per_track=1, eval_segments=1,
                   # transforms.py: SpecAugment p=.7, 1 mask, frequency <= 10 %, time <= 15 %
                   spec_augment=dict(probability=0.7, time_masks=1, freq_masks=1, max_time_fraction=0.15,
                                     max_freq_fraction=0.1))
WAVENET_SETTINGS = SETTINGS + (
    Setting("input", "16-band NSynth WaveNet encodings, one random 30 s (937-frame) window, bands duplicated to 32",
            "code"),
    Setting("SpecAugment", "p .7, 1 mask per axis, <= 10 % of bands, <= 15 % of frames", "code"),
    Setting("RandomResizedCrop", "p .33, scale (0.8, 1.0), ratio (1.7, 2.3)", "neither",
            "the code applies it to the duplicated 32-row features (central 32 x 74 fallback); tfmood crops the "
            "16 bands before the model duplicates them (16 x 37)"),
    Setting("loss, batch", "BCE, 32", "code"),
)
SMOKE_BANDS = 16  # WaveNet recipes smoke-run on the 16-band WaveNet-shaped demo (records/demo-wavenet)
