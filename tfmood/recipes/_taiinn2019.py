"""Settings shared by the Taiinn 2019 VQ-VAE recipes (seeds/004_8dd820b39c77c927.txt; annahung31/moodtheme-tagging,
systems.md E)."""

from tfmood.recipes.base import MTG_MEL, Setting

# Step 1 writes it: python -m tfmood.train --model vqvae --pretrain saved_models/vqvae.keras --data records/jamendo-mel
VQVAE = "saved_models/vqvae.keras"
CROP = 1024  # the paper's 128 x 1024 input (first 1024 frames); here a random 1024-frame crop

# Step 2 (paper 2.4, runs 2 and 4): the pre-trained encoder + codebook frozen, the classifier trained with BCE,
# batch 12, Adam 2e-4 (the paper; the code has 3e-5), at most 100 epochs with early stopping.
TRAINING = dict(data=MTG_MEL, crop_frames=CROP, crops_per_track=1, eval_segments=4, loss="bce", optimizer="adam",
                lr=2e-4, batch_size=12, epochs=100, early_stopping_patience=10, schedule="plateau",
                plateau_patience=10, spec_augment=False, mixup_alpha=0.0)
ENCODER = dict(encoder_weights=VQVAE, freeze_encoder=True, code_dim=256, num_codes=1024)
SMOKE_ENCODER = dict(encoder_weights=None, freeze_encoder=True, code_dim=16, num_codes=32)

DOC_COMMON = """
Two steps. 1) Pre-train the VQ-VAE (Type-1: 5 conv layers + 2 residual blocks, D = 256, K = 1024; loss MSE
reconstruction + codebook + commitment, beta 1, Adam 3e-4):
    python -m tfmood.train --model vqvae --pretrain saved_models/vqvae.keras --data records/jamendo-mel --epochs 50
2) Train the classifier on the frozen encoder + codebook (this recipe; `encoder_weights` points at step 1's file).
Step 2 settings (paper 2.4): BCE, batch 12, Adam 2e-4, at most 100 epochs with early stopping.
Choices (settings table, `--list-recipes`): Taiinn pre-trained on the Million Song Dataset (not available):
tfmood pre-trains on the MTG training split; Taiinn's 128-band librosa log-mel of the first 1024 frames becomes
MTG's 96-band mel with a random 1024-frame crop per epoch (z_e is 2 codes high instead of 4) and evaluation
on 4 evenly spaced crops; lr 2e-4 (paper) over the code's 3e-5; early-stopping patience 10 and
ReduceLROnPlateau patience 10 (PyTorch's default) on validation PR-AUC-macro. `--smoke`: no pre-trained
encoder (a random, frozen codebook), D = 16, K = 32.
"""

SETTINGS = (
    Setting("VQ-VAE pre-training data", "the MTG training split", "neither",
            "Taiinn used the Million Song Dataset, which is not available"),
    Setting("input", "MTG 96-band mel, a random 1024-frame crop per epoch; evaluation: mean of 4 evenly spaced crops",
            "neither", "Taiinn's 128-band librosa log-mel of the first 1024 frames has no MTG records"),
    Setting("classifier training", "frozen encoder + codebook; BCE; batch 12; at most 100 epochs", "paper",
            "the paper (2.4) gives the submitted settings"),
    Setting("learning rate", "Adam 2e-4", "paper", "the code has 3e-5"),
    Setting("early stopping, plateau, model selection", "patience 10 each on validation PR-AUC-macro", "neither",
            "the paper says early stopping without details [UNVERIFIED]"),
)
