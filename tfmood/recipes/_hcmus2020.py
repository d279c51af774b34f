"""Settings shared by the HCMUS 2020 recipes (seeds/000_9213b5aaf4f10f2c.txt; v-nhandt21/MediaEval2020, systems.md D3)."""

from tfmood.recipes.base import WAVENET, WAVENET_FPS

# Code (SourceCode/WaveNetModel/main.py): BCEWithLogits, Adam 1e-3 with amsgrad, ReduceLROnPlateau(patience 5),
# 120 epochs, early stop after 25 epochs, batch 32, mixup alpha 1; paper 3.2.1: labels reduced to the track's
# most significant tag, which tfmood reads as the rarest one (`label_balancing`, [UNVERIFIED] rule).
TRAINING = dict(loss="bce", optimizer="adam", lr=1e-3, amsgrad=True, schedule="plateau", plateau_patience=5,
                epochs=120, early_stopping_patience=25, batch_size=32, mixup_alpha=1.0, mixup_mode="targets",
                label_balancing=True)

# WaveNet runs: one 30 s NSynth encoding per track (937 frames of 16 bands, paper 3.2.2), used whole.
WAVENET_SECONDS = 30
WAVENET_RUN = dict(data=WAVENET, crop_frames=int(WAVENET_SECONDS * WAVENET_FPS), crops_per_track=1, eval_segments=1,
                   # transforms.py: SpecAugment p=.7, 1 mask, frequency <= 10 %, time <= 15 %
                   spec_augment=dict(probability=0.7, time_masks=1, freq_masks=1, max_time_fraction=0.15,
                                     max_freq_fraction=0.1))
SMOKE_BANDS = 16  # WaveNet recipes smoke-run on the 16-band WaveNet-shaped demo (records/demo-wavenet)
