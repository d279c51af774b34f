"""Settings shared by the CP-JKU 2019 recipes (seeds/002_7a5e6da71785d10d.txt; kkoutini/cpjku_dcase19, systems.md A)."""

from tfmood.recipes.base import Setting

# CP-JKU's own input (paper; systems.md A6; tfmood.cpjku_frontend): 44.1 kHz, 2048-sample window, perceptually
# weighted, 256 bands; hop 512 for runs 1-3, 1536 for runs 4-5. Made from the audio by
#   python tools/convert.py ... --features audio-cpjku         --features-root audio/ --out records/jamendo-cpjku
#   python tools/convert.py ... --features audio-cpjku-hop1536 --features-root audio/ --out records/jamendo-cpjku-hop1536
CPJKU_MEL, CPJKU_MEL_HOP1536 = "records/jamendo-cpjku", "records/jamendo-cpjku-hop1536"
CPJKU_FPS, CPJKU_FPS_HOP1536 = 44100 / 512, 44100 / 1536  # 86.1 and 28.7 frames/s

# Paper 2.2: Adam, 10 warm-up epochs, lr 1e-4 for 60 epochs, linear decay to 1e-6 over 50, then 80 more epochs.
WARMUP, CONSTANT, DECAY, FINAL = 10, 60, 50, 80
EPOCHS = WARMUP + CONSTANT + DECAY + FINAL                     # 200, as the paper says
SCHEDULE_OPTIONS = dict(warmup=WARMUP, decay_start=WARMUP + CONSTANT, decay_end=WARMUP + CONSTANT + DECAY,
                        final_factor=0.01)

# Crop length: not published; 30 s of MTG mel. Evaluation: 8 evenly spaced crops cover a typical track.
CROP_SECONDS = 30
ROLL_FRAMES = 50  # datasets.py get_roll_func(shift_range=50): a circular time roll of -50..50 frames per example
TRAINING = dict(data=CPJKU_MEL, crop_frames=round(CROP_SECONDS * CPJKU_FPS), eval_segments=8,
                optimizer="adam", lr=1e-4, schedule="cpjku", schedule_options=SCHEDULE_OPTIONS, epochs=EPOCHS,
                batch_size=10,                                # A5: code default (MediaEval value unpublished)
                early_stopping_patience=EPOCHS,               # CP-JKU trains the full schedule
                loss="bce", mixup_alpha=0.3, mixup_mode="losses",  # A5: my_mixup, lambda = max(lambda, 1 - lambda)
                standardize="bands",                          # A5: per-mel-bin mean/std of the training set
                crop_transforms=[dict(name="time_roll", max_shift=ROLL_FRAMES)],
                spec_augment=False)                           # CP-JKU rolls in time instead of masking
# Runs 4-5 (CRNN, ResNet34): the paper's 25 % overlap input (hop 1536); the same 30 s crops.
TRAINING_RUNS_4_5 = {**TRAINING, "data": CPJKU_MEL_HOP1536, "crop_frames": round(CROP_SECONDS * CPJKU_FPS_HOP1536)}

# Paper 3.4: SWA adds the weights every 3 epochs; the start is not published: once the rate has reached its final
# value. Prediction averages the best model with the last 4 SWA snapshots ("snapshot averaging").
SWA = dict(swa_start=WARMUP + CONSTANT + DECAY + 1, swa_every=3, swa_keep=4)

# rho: exp_cp_resnet.py and exp_cp_faresnet.py default to --rho 5, which overwrites the kernels of
# configs/cp_resnet.json (whose own value is 7); the MediaEval runs' rho is not published. The recipes run the
# scripts' default. Receptive fields: 87 px at rho 5, 135 px at rho 7 (geometric; CP-JKU's
# utils_funcs.get_maxrf reports 81 and 145, because it multiplies the stride before adding a pooled block).
RHO = 5
CP_OPTIONS = dict(rho=RHO, base_channels=128)
SMOKE_CP_OPTIONS = dict(rho=RHO, base_channels=8)

DOC_COMMON = """
Shared CP-JKU settings (paper 2.2, 3.4; systems.md A5): Adam lr 1e-4 with 10 warm-up epochs, 60 constant, a
linear decay to 1e-6 over 50, then 80 at 1e-6 (200 epochs, `schedule=cpjku`); mixup alpha 0.3 with mixed
*losses* and lambda = max(lambda, 1 - lambda); BCE; batch 10; no early stopping; per-band standardisation with
the training split's mean and std (`standardize=bands`, computed once into band_stats.json beside the
manifest); a random circular time roll of -50..50 frames per example (`time_roll`); no SpecAugment.
Input: CP-JKU's own 44.1 kHz, 2048-window, perceptually weighted 256-band spectrogram, converted from the audio
with `tools/convert.py --features audio-cpjku` (hop 512, runs 1-3: records/jamendo-cpjku) or
`--features audio-cpjku-hop1536` (runs 4-5: records/jamendo-cpjku-hop1536); `--data records/jamendo-mel` trains
on MTG's 96-band mel instead (give `--crop-frames 1406` for the same 30 s). The settings table (`python -m tfmood.train --list-recipes`,
docs/recipes.md) says for each setting whether it follows the code, the paper or neither.
"""

SETTINGS = (
    Setting("input", "44.1 kHz, 2048 window, hop 512 (runs 1-3) / 1536 (runs 4-5), A-weighted dB, 256 mel bands "
            "(`--features audio-cpjku[-hop1536]`)", "paper",
            "the public processor loads audio at 22.05 kHz; the paper gives 44.1 kHz for MediaEval. The rest "
            "(window, weighting, 256 bands filtering the dB values) is the code's, checked against librosa"),
    Setting("optimiser, schedule", "Adam 1e-4: 10 warm-up, 60 constant, linear decay to 1e-6 over 50, 80 at 1e-6; "
            "200 epochs", "paper", "the code's DCASE schedule (decay 50-250 over 400 epochs) is not the MediaEval one"),
    Setting("mixup", "alpha 0.3, mixed losses, lambda = max(lambda, 1 - lambda)", "code"),
    Setting("loss", "BCE", "code"),
    Setting("standardisation", "per mel bin, training-set mean and std", "code"),
    Setting("time roll", "circular, -50..50 frames per example", "code"),
    Setting("SpecAugment", "off", "code"),
    Setting("batch", "10", "code", "the code's default; the MediaEval value is not published [UNVERIFIED]"),
    Setting("crop", "30 s (2584 frames at hop 512, 861 at hop 1536) random crop per epoch; evaluation: mean of 8 "
            "evenly spaced crops",
            "neither", "not published [UNVERIFIED]"),
    Setting("early stopping", "none (the full schedule)", "both"),
)

RHO_SETTING = Setting("rho", f"{RHO} (receptive field 87 px)", "code",
                      "the training scripts' default, which overrides the JSON config's 7; the MediaEval value is "
                      "not published [UNVERIFIED]")
SWA_SETTING = Setting("SWA", "from epoch 121 every 3 epochs; prediction = best model averaged with the last 4 "
                      "snapshots", "paper", "every 3 epochs and snapshot averaging: paper 3.4 and the code; the start "
                      "is not published [UNVERIFIED]: once the rate has reached its final value")

# Runs 4-5 (CRNN, ResNet34) come from CP-JKU's moodwalk code, which is not public: cpjku_dcase19's settings are
# assumed for them, so none of the "code" settings is the run's own code.
MOODWALK_SETTINGS = tuple(
    Setting(s.what, s.value, "neither", "runs 4-5's code (gitlab.cp.jku.at/shreyan/moodwalk) is not public: "
            f"cpjku_dcase19's setting is assumed [UNVERIFIED]{'; ' + s.why if s.why else ''}")
    if s.source == "code" else s for s in SETTINGS) + (
    Setting("SWA", "off", "neither", "Table 1 does not mark runs 4-5 as averaged [UNVERIFIED]"),)
