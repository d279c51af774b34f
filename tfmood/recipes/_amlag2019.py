"""Input pipeline shared by the AMLAG 2019 and UAI-CNRL 2020 recipes (sainathadapa/mediaeval-2019-moodtheme-detection
submission2, systems.md B1-B6)."""

from tfmood.recipes.base import MTG_MEL

SEGMENTS, SEGMENT_FRAMES = 16, 256
CROP = SEGMENTS * SEGMENT_FRAMES  # 4096 frames, about 87.4 s

# B1: one 4096-frame crop per track; SpecAugment with p=.5, 1-2 masks of <= 15 % of the bands and <= 20 % of the
# frames, filled with the minimum (tfmood draws 2 masks whose widths start at 0, so some are empty).
INPUT = dict(data=MTG_MEL, crop_frames=CROP, crops_per_track=1,
             spec_augment=dict(probability=0.5, time_masks=2, freq_masks=2, max_time_fraction=0.2,
                               max_freq_fraction=0.15),
             eval_segments=3)

# transforms.py get_transforms: UseWithProb(RandomResizedCrop(scale=(0.8, 1.0), ratio=(1.7, 2.3)), p=.33) between
# the random crop and SpecAugment (also SELAB's and HCMUS's pipelines). On a 96 x 4096 crop it always falls back
# to the central 96 x 221 frames, resized back (systems.md B1).
RANDOM_RESIZED_CROP = dict(name="random_resized_crop", probability=0.33, scale=[0.8, 1.0], ratio=[1.7, 2.3])

# solver.py `_schedule`: Adam 1e-4; after 60 epochs reload best and switch to SGD 1e-3 (Nesterov, momentum .9,
# weight decay 1e-4); after 20 more reload best and set 1e-4; after 20 more reload best and set 1e-5.
STAGED = dict(optimizer="adam_sgd", lr=1e-4, schedule="staged",
              schedule_options=dict(adam_epochs=60, sgd_epochs=20, sgd_rates=[1e-3, 1e-4, 1e-5]))

# Smoke: 2 segments of 32 frames, narrow transformer; 'same' padding keeps out_conv valid on the tiny maps.
SMOKE_CROP = 64
SMOKE_ATTENTION = dict(segment_frames=32, hidden=32, conv_width=32, ffn=64, heads=2, head_padding="same")
