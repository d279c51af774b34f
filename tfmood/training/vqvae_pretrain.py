"""Pre-train the Taiinn 2019 VQ-VAE (systems.md §E2) on spectrogram crops, before training `vqvae_gru`/`vqvae_cnn`.

Usage:
    python -m tfmood.training.vqvae_pretrain records/jamendo-mel --out saved_models/vqvae.keras --epochs 50
    # then, in Python: models.build("vqvae_gru", input_shape=(96, None, 1), encoder_weights="saved_models/vqvae.keras")

Loss = MSE(reconstruction, x) + MSE(z_q, sg z_e) + beta * MSE(z_e, sg z_q), Adam 3e-4 (Taiinn's VQVAE_Trainer;
beta = 1, K = 1024, D = 256, batch 12 in their code). Crops come from `tfmood.data.pipeline.train_dataset`
without SpecAugment (masks would be learned as content); labels are not used.
Writes OUT (the whole VQ-VAE, `.keras`) and OUT with `.encoder.weights.h5` (encoder + codebook only), both atomically.
"""

import argparse
import os
import sys


def encoder_weights_path(out_path: str) -> str:
    """`vqvae.keras` -> `vqvae.encoder.weights.h5`."""
    return out_path[: -len(".keras")] + ".encoder.weights.h5"


def _save_atomic(save, path):
    # Keras picks the format from the suffix, so the temporary name keeps it.
    suffix = ".weights.h5" if path.endswith(".weights.h5") else os.path.splitext(path)[1]
    tmp = f"{path[: -len(suffix)]}.tmp-{os.getpid()}{suffix}"
    save(tmp)
    os.replace(tmp, path)


def pretrain(records_dir, out_path, epochs=1, batch_size=12, crop_frames=1024, steps_per_epoch=None,
             code_dim=256, num_codes=1024, beta=1.0, learning_rate=3e-4, input_scale=0.01, input_offset=0.0,
             split="train", seed=None, verbose="auto") -> dict:
    """Train a VQ-VAE on `split` crops of `records_dir`, save it to `out_path` (.keras); returns the loss history."""
    import keras
    import tensorflow as tf
    from tfmood.data import pipeline
    from tfmood.data.convert import read_manifest
    from tfmood.models.vqvae import build_vqvae

    if not str(out_path).endswith(".keras"):
        raise ValueError(f"`out_path` must end in .keras. Received: {out_path!r}")
    if crop_frames < 2 or crop_frames % 2:
        raise ValueError(f"`crop_frames` must be even and >= 2 (the decoder doubles time). Received: {crop_frames}")
    if epochs < 1:
        raise ValueError(f"`epochs` must be >= 1. Received: {epochs}")
    bands = int(read_manifest(records_dir)["bands"])
    crops = pipeline.train_dataset(records_dir, split, batch_size=batch_size, crop_frames=crop_frames,
                                   spec_augment=False, seed=seed)
    # A VQ-VAE learns from x alone (every loss is added inside the model); the static shape lets Keras check it.
    crops = crops.map(lambda x, y: tf.ensure_shape(x, (batch_size, bands, crop_frames, 1)))
    if steps_per_epoch:  # a fixed number of steps per epoch: keep drawing crops across epoch boundaries
        crops = crops.repeat()
    model = build_vqvae(bands, code_dim, num_codes, beta, input_scale, input_offset)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    history = model.fit(crops, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=verbose, shuffle=False)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    _save_atomic(model.save, out_path)
    _save_atomic(model.get_layer("vqvae_encoder").save_weights, encoder_weights_path(out_path))
    return history.history


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("records_dir", help="converted records (tools/convert.py output)")
    p.add_argument("--out", required=True, help="VQ-VAE file to write, e.g. saved_models/vqvae.keras")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--crop-frames", type=int, default=1024, help="even crop length in frames (default 1024)")
    p.add_argument("--steps-per-epoch", type=int, help="default: one pass over the crops")
    p.add_argument("--num-codes", type=int, default=1024, help="codebook size K (default 1024)")
    p.add_argument("--code-dim", type=int, default=256, help="code dimension D (default 256)")
    p.add_argument("--beta", type=float, default=1.0, help="commitment weight (default 1.0)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (default 3e-4)")
    p.add_argument("--input-scale", type=float, default=0.01, help="x * scale before the encoder (default 0.01)")
    p.add_argument("--seed", type=int)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        history = pretrain(args.records_dir, args.out, epochs=args.epochs, batch_size=args.batch_size,
                           crop_frames=args.crop_frames, steps_per_epoch=args.steps_per_epoch,
                           code_dim=args.code_dim, num_codes=args.num_codes, beta=args.beta,
                           learning_rate=args.lr, input_scale=args.input_scale, seed=args.seed)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"final loss {history['loss'][-1]:.5f}; wrote {args.out} and {encoder_weights_path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
