#!/usr/bin/env python
"""Time the VQ-VAE encoder's frequency-halving dilated convs: time_to_batch (`HalvingDilatedConv`) vs the naive
stride-1 dilated conv that keeps every other row (the obvious Keras workaround, twice the arithmetic).

Usage:
    python tools/bench_vqvae_encoder.py --bands 96 --frames 1024 --code-dim 256 --batch 1 --repeats 3
"""

import argparse
import time
import tfmood  # noqa: F401  (before TensorFlow: drops its benign start-up lines, tfmood/_quiet.py)

import numpy as np


def naive_stack(bands, code_dim):
    import keras
    from keras import layers

    inputs = keras.Input((bands, None, 1))
    x = inputs
    for dilation in (2, 4, 8, 16):
        x = layers.ZeroPadding2D(((1, 1), (dilation, dilation)))(x)
        x = layers.Conv2D(code_dim, (4, 3), dilation_rate=(1, dilation))(x)
        x = layers.ReLU()(layers.Lambda(lambda t: t[:, ::2])(x))
    return keras.Model(inputs, x)


def halving_stack(bands, code_dim):
    import keras
    from keras import layers
    from tfmood.models.vqvae import HalvingDilatedConv

    inputs = keras.Input((bands, None, 1))
    x = inputs
    for dilation in (2, 4, 8, 16):
        x = layers.ReLU()(HalvingDilatedConv(code_dim, dilation)(x))
    return keras.Model(inputs, x)


def seconds_per_call(model, x, repeats):
    import tensorflow as tf

    step = tf.function(lambda t: model(t, training=False))
    step(x)  # trace + warm up
    start = time.perf_counter()
    for _ in range(repeats):
        np.asarray(step(x))
    return (time.perf_counter() - start) / repeats


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bands", type=int, default=96)
    p.add_argument("--frames", type=int, default=1024)
    p.add_argument("--code-dim", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    x = np.random.default_rng(0).normal(size=(args.batch, args.bands, args.frames, 1)).astype("float32")
    naive = seconds_per_call(naive_stack(args.bands, args.code_dim), x, args.repeats)
    halving = seconds_per_call(halving_stack(args.bands, args.code_dim), x, args.repeats)
    print(f"naive stride-1 + keep even rows: {naive:.3f} s/call")
    print(f"HalvingDilatedConv (time_to_batch): {halving:.3f} s/call ({naive / halving:.2f}x faster)")


if __name__ == "__main__":
    main()
