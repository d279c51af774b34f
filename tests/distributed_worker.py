"""Train for a few steps under one strategy and save the weights (subprocess helper of test_distributed.py).

    python tests/distributed_worker.py single   RECORDS OUT_DIR [WORKLOAD]   # default strategy, one device
    python tests/distributed_worker.py mirrored RECORDS OUT_DIR [WORKLOAD]   # MirroredStrategy on 2 logical CPUs
    TF_CONFIG=... python tests/distributed_worker.py worker RECORDS OUT_DIR [WORKLOAD]   # MultiWorkerMirrored
    python tests/distributed_worker.py single-sync RECORDS OUT_DIR bn   # one device, Keras' synchronized-BN formula
    python tests/distributed_worker.py single-reversed RECORDS OUT_DIR bn   # one device, each batch's rows reversed

Weights go to `worker_dir(strategy, OUT_DIR)/weights.npz` (the chief's straight into OUT_DIR), with the
first batch this process trains on (`x`, `y`: its replica's rows) and, for `bn`, the first batch of the
data SWA's BN pass would read after training (`pass_x`).

WORKLOAD `tiny` (default): a BN-free tiny CNN on fixed crops (the first 16 frames of each track, in split
order, no augmentation): Mirrored splits each batch itself; under MultiWorker each worker keeps its rows of
every batch (what `pipeline.worker_datasets` gives the trainer).
WORKLOAD `bn`: the trainer's own input (`trainer.training_data`: random crops, SpecAugment, mixup; under
MultiWorker each worker's share of every global batch) and the demo MobileNetV2 (BatchNormalization,
synchronized across workers as `prepare_fit` sets it), with --deterministic.
WORKLOAD `bn-device`: `bn` with `augment_on="device"` (deferred batches, finished in the training step as the
trainer sets it up; `x` and `pass_x` are saved finished).

Why the runs are comparable exactly: the same global batches on every setup, the same initial weights (same
seed), SGD (no per-replica state); gradients are means over the global batch in both cases.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

GLOBAL_BATCH, STEPS = 8, int(os.environ.get("STEPS", 3))


def strategy_for(mode):
    import tensorflow as tf
    from tfmood.training.strategy import get_strategy

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    return get_strategy()  # MultiWorkerMirrored when TF_CONFIG lists several workers


def tiny_dataset(records):
    from tfmood.data import pipeline

    ds = pipeline.eval_dataset(records, "train", crop_frames=16, segments=1)
    return ds.map(lambda track: (track["segments"][0], track["labels"])).batch(GLOBAL_BATCH, drop_remainder=True)


def bn_config():
    from tfmood.training.config import TrainConfig

    return TrainConfig(model="mobilenetv2", model_options={"alpha": 0.35}, batch_size=GLOBAL_BATCH, crop_frames=32,
                       optimizer="sgd", lr=0.05, seed=0, deterministic=True, mixup_alpha=0.3, mixed_precision=False)


def build(workload, strategy, records):
    import keras
    import tiny_model  # noqa: F401
    from tfmood import models
    from tfmood.data.convert import read_manifest
    from tfmood.training import trainer
    from tfmood.training.strategy import worker_share

    bands = read_manifest(records)["bands"]
    if workload == "tiny":
        with strategy.scope():
            model = models.build("tiny_cnn", input_shape=(bands, None, 1), batch_norm=False, width=4)
            model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy")
        data, worker = tiny_dataset(records), worker_share(strategy)
        if worker:  # each worker trains on its rows of every global batch, as `pipeline.worker_datasets` gives them
            share = GLOBAL_BATCH // worker[1]
            data = data.map(lambda x, y: (x[worker[0] * share:(worker[0] + 1) * share],
                                          y[worker[0] * share:(worker[0] + 1) * share]))
        return model, data, None
    cfg = bn_config()
    cfg.augment_on = "device" if workload == "bn-device" else "pipeline"
    with strategy.scope():
        model = trainer.build_and_compile(cfg, bands, records)
    data, pass_data = trainer.training_data(cfg, records, worker_share(strategy))
    trainer.finish_in_step(model, cfg, data.element_spec)  # as the trainer does (nothing for finished batches)
    return model, data, pass_data


def main(mode, records, out, workload="tiny"):
    import keras
    import numpy as np
    from tfmood.data import deferred
    from tfmood.training.strategy import is_chief, prepare_fit, worker_dir
    from tfmood.training.swa import batch_norm_layers

    import tensorflow as tf

    strategy = strategy_for(mode)
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()  # same kernels and reduction orders run to run
    model, data, pass_data = build(workload, strategy, records)
    if mode == "single-sync":  # Keras' synchronized moments (E[x^2] - E[x]^2) on one device
        for layer in batch_norm_layers(model):
            layer.synchronized = True
    if mode == "single-reversed":  # the same step on the batch's rows in reverse order: float rounding alone
        data = data.map(lambda x, y: (x[::-1], y[::-1]))
    initial = model.get_weights()[0]
    data = prepare_fit(model, data)  # as the trainer does
    x, y = next(iter(data))  # the first batch (an iteration, as fit's epoch will be the next one)
    x, y = (tf.nest.map_structure(lambda t: strategy.experimental_local_results(t)[0], v) for v in (x, y))
    x, y = deferred.finish(x).numpy(), y.numpy()  # `bn-device`: finished as the step finishes it
    model.fit(data, epochs=1, steps_per_epoch=STEPS, verbose=0, shuffle=False)
    # What SWA's BN pass would read next (the global batches, on every worker): the third epoch's first batch
    after = {} if pass_data is None else {"pass_x": deferred.finish(next(iter(pass_data))[0]).numpy()}
    folder = worker_dir(strategy, out)
    os.makedirs(folder, exist_ok=True)
    np.savez(os.path.join(folder, "weights.npz"), *model.get_weights(), initial=initial, x=x, y=y,
             names=np.array([w.path for w in model.weights]), **after,
             replicas=strategy.num_replicas_in_sync, chief=is_chief(strategy))


if __name__ == "__main__":
    main(*sys.argv[1:5])
