"""Train a tiny BN-free tagger for a few steps under one strategy and save its weights (subprocess helper).

    python tests/distributed_worker.py single   RECORDS OUT_DIR   # default strategy, one device
    python tests/distributed_worker.py mirrored RECORDS OUT_DIR   # MirroredStrategy on 2 logical CPUs
    TF_CONFIG=... python tests/distributed_worker.py worker RECORDS OUT_DIR   # MultiWorkerMirrored

Weights go to `worker_dir(strategy, OUT_DIR)/weights.npz` (the chief's straight into OUT_DIR).
Why the runs are comparable exactly: the same global batches in the same order on every setup (fixed
crops, no augmentation, DATA auto-sharding (`prepare_fit`): the global batch is split into
per-replica halves and worker i takes half i, so one step covers exactly the single-process batch), the
same initial weights (same seed), SGD (no per-replica state), and no BatchNormalization (its batch
statistics would be per replica). Gradients are means over the global batch in both cases.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

GLOBAL_BATCH, STEPS, BANDS = 8, 3, None


def strategy_for(mode):
    import tensorflow as tf
    from tfmood.training.strategy import get_strategy

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    return get_strategy()  # MultiWorkerMirrored when TF_CONFIG lists several workers


def dataset(records):
    """The first 16 frames of each training track, in split order: fixed data, no random op.

    (The training pipeline's random crops are seeded, but their draws did not line up between a plain
    and a distributed iterator in our tests, so they cannot serve an exact comparison.)
    """
    from tfmood.data import pipeline

    ds = pipeline.eval_dataset(records, "train", crop_frames=16, segments=1)
    return ds.map(lambda track: (track["segments"][0], track["labels"])).batch(GLOBAL_BATCH, drop_remainder=True)


def main(mode, records, out):
    import keras
    import numpy as np
    import tiny_model  # noqa: F401
    from tfmood import models
    from tfmood.data.convert import read_manifest
    from tfmood.training.strategy import is_chief, prepare_fit, worker_dir

    import tensorflow as tf

    strategy = strategy_for(mode)
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()  # same kernels and reduction orders run to run
    bands = read_manifest(records)["bands"]
    with strategy.scope():
        model = models.build("tiny_cnn", input_shape=(bands, None, 1), batch_norm=False, width=4)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy")
    initial = model.get_weights()[0]
    data = dataset(records)
    data = prepare_fit(model, data)  # as the trainer does
    model.fit(data, epochs=1, steps_per_epoch=STEPS, verbose=0)
    folder = worker_dir(strategy, out)
    os.makedirs(folder, exist_ok=True)
    np.savez(os.path.join(folder, "weights.npz"), *model.get_weights(),
             initial=initial, replicas=strategy.num_replicas_in_sync, chief=is_chief(strategy))


if __name__ == "__main__":
    main(*sys.argv[1:4])
