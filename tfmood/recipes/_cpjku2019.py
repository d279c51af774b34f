"""Settings shared by the CP-JKU 2019 recipes (seeds/002_7a5e6da71785d10d.txt; kkoutini/cpjku_dcase19, systems.md A)."""

from tfmood.recipes.base import MTG_FPS, MTG_MEL

# Paper 2.2: Adam, 10 warm-up epochs, lr 1e-4 for 60 epochs, linear decay to 1e-6 over 50, then 80 more epochs.
WARMUP, CONSTANT, DECAY, FINAL = 10, 60, 50, 80
EPOCHS = WARMUP + CONSTANT + DECAY + FINAL                     # 200, as the paper says
SCHEDULE_OPTIONS = dict(warmup=WARMUP, decay_start=WARMUP + CONSTANT, decay_end=WARMUP + CONSTANT + DECAY,
                        final_factor=0.01)

# [UNVERIFIED] crop length: 30 s of MTG mel; evaluation: 8 evenly spaced crops cover a typical track.
CROP_SECONDS = 30
TRAINING = dict(data=MTG_MEL, crop_frames=round(CROP_SECONDS * MTG_FPS), eval_segments=8,
                optimizer="adam", lr=1e-4, schedule="cpjku", schedule_options=SCHEDULE_OPTIONS, epochs=EPOCHS,
                batch_size=10,                                # A5: code default (MediaEval value [UNVERIFIED])
                early_stopping_patience=EPOCHS,               # CP-JKU trains the full schedule
                loss="bce", mixup_alpha=0.3, mixup_mode="losses",  # A5: my_mixup, lambda = max(lambda, 1 - lambda)
                spec_augment=False)                           # CP-JKU rolls in time instead (not in tfmood)

# Paper 3.4: SWA adds the weights every 3 epochs; start [UNVERIFIED]: once the rate has reached its final value.
# Prediction averages the best model with the last 4 SWA snapshots ("snapshot averaging").
SWA = dict(swa_start=WARMUP + CONSTANT + DECAY + 1, swa_every=3, swa_keep=4)

RHO = 7  # [UNVERIFIED] MediaEval rho; configs/cp_resnet.json uses 7 (max receptive field 135 px)
CP_OPTIONS = dict(rho=RHO, base_channels=128)
SMOKE_CP_OPTIONS = dict(rho=RHO, base_channels=8)

DOC_COMMON = """
Shared CP-JKU settings (paper 2.2, 3.4; systems.md A5): Adam lr 1e-4 with 10 warm-up epochs, 60 constant, a
linear decay to 1e-6 over 50, then 80 at 1e-6 (200 epochs, `schedule=cpjku`); mixup alpha 0.3 with mixed
*losses* and lambda = max(lambda, 1 - lambda); BCE; batch 10; no early stopping. Input: tfmood has no 256-bin
perceptually weighted 44.1 kHz front end, so the recipes train on MTG's 96-band mel (records/jamendo-mel)
[decision]; the crop length (30 s = 1406 frames) and evaluation (mean of 8 evenly spaced crops) are
[UNVERIFIED]; CP-JKU's random time roll (+-50 frames) is not reproduced (random crops play its part).
"""
