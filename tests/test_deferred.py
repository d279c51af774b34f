"""Augmentation deferred to the training step (`augment_on="device"`, tfmood.data.deferred) makes the batches
the pipeline makes: the same crops, draws and labels, finished in the step instead of in tf.data."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfmood.data import deferred, pipeline, recipe_augment
from tfmood.training import losses
from test_data_service import in_process_service  # noqa: F401  (a fixture: a dispatcher and 2 workers in-process)

# Everything at once: both recipe transforms, SpecAugment (always applied, so every row is masked), mixup.
FULL = dict(spec_augment={"probability": 1.0}, mixup_alpha=0.4, label_balancing=True,
            crop_transforms=[{"name": "time_roll", "max_shift": 7},
                             {"name": "random_resized_crop", "probability": 0.5}])


def epochs(ds, n=2):
    """`n` epochs of `ds` as lists of numpy structures (one iteration per epoch, as Keras iterates)."""
    return [[tf.nest.map_structure(lambda t: t.numpy(), e) for e in ds] for _ in range(n)]


def finished(ds, transforms=()):
    fns = recipe_augment.build(transforms)
    return ds.map(lambda x, y: (deferred.finish(x, fns), y))


def assert_same_batches(a, b):
    assert len(a) == len(b) and all(len(e) == len(f) for e, f in zip(a, b))
    for epoch_a, epoch_b in zip(a, b):
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b):
            assert xa.shape == xb.shape and xa.dtype == xb.dtype == np.float32
            np.testing.assert_array_equal(ya, yb)
            # mixup's blend: XLA may contract it into a fused multiply-add in one place and not the other
            np.testing.assert_allclose(xa, xb, rtol=2e-6, atol=2e-6 * np.abs(xb).max())


@pytest.mark.parametrize("options", [FULL, dict(spec_augment=True), dict(FULL, mixup_alpha=0.0)],
                         ids=["everything", "spec-augment", "no-mixup"])
def test_finished_deferred_batches_are_the_pipelines_batches(tiny_records, options):
    args = dict(batch_size=8, crop_frames=24, seed=5, deterministic=True, **options)
    want = epochs(pipeline.train_dataset(tiny_records, **args))
    deferred_ds = pipeline.train_dataset(tiny_records, augment_on="device", **args)
    # (a look at the first batch from another instance: iterating this one would draw its first epoch)
    x, _ = next(iter(pipeline.train_dataset(tiny_records, augment_on="device", **args)))
    assert deferred.is_deferred(x)
    assert x["crops"].dtype == tf.float32 and x["crops"].shape[-2:] == (24, 96)  # raw: time-major, stored dtype
    got = epochs(finished(deferred_ds, options.get("crop_transforms", ())))
    assert_same_batches(got, want)
    # the comparison can fail: two epochs differ, and an unfinished crop is not the augmented batch
    assert not np.array_equal(want[0][0][0], want[1][0][0])
    if options.get("spec_augment"):
        raw = np.transpose(x["crops"].numpy(), [0, 2, 1])
        assert not np.allclose(raw, want[0][0][0][..., 0])


def test_worker_shares_of_deferred_batches_are_the_global_batchs_rows(tiny_records):
    args = dict(batch_size=8, crop_frames=24, seed=2, deterministic=True, **FULL)
    whole = epochs(pipeline.train_dataset(tiny_records, **args), 1)[0]
    shares = []
    for index in range(4):
        share, _ = pipeline.worker_datasets(tiny_records, worker=(index, 4), augment_on="device", **args)
        x, _ = next(iter(pipeline.worker_datasets(tiny_records, worker=(index, 4), augment_on="device", **args)[0]))
        assert x["crops"].shape[0] == x["partner"]["crops"].shape[0] == 2  # its 2 rows and their partners
        shares.append(epochs(finished(share, FULL["crop_transforms"]), 1)[0])
    joined = [(np.concatenate([s[j][0] for s in shares]), np.concatenate([s[j][1] for s in shares]))
              for j in range(len(whole))]
    assert_same_batches([joined], [whole])


def test_mixed_loss_mixup_of_deferred_batches_equals_the_pipelines(tiny_records):
    args = dict(batch_size=8, crop_frames=24, seed=1, deterministic=True, spec_augment=True)
    want = epochs(losses.mixed_loss_batches(pipeline.train_dataset(tiny_records, **args), 0.3, seed=4))
    got = losses.mixed_loss_batches(pipeline.train_dataset(tiny_records, augment_on="device", **args), 0.3, seed=4)
    assert "lam" in got.element_spec[0]
    assert_same_batches(epochs(finished(got)), want)


def test_a_mixed_deferred_batch_cannot_be_mixed_again(tiny_records):
    ds = pipeline.train_dataset(tiny_records, batch_size=8, crop_frames=24, seed=0, mixup_alpha=0.3,
                                augment_on="device")
    with pytest.raises(ValueError, match="mixed already"):
        losses.mixed_loss_batches(ds, 0.3, seed=0)


def test_finished_spec_is_what_finish_yields(tiny_records):
    ds = pipeline.train_dataset(tiny_records, batch_size=8, crop_frames=24, seed=0, mixup_alpha=0.3,
                                augment_on="device")
    spec = deferred.finished_spec(ds.element_spec)
    x, y = next(iter(finished(ds)))
    assert spec[0].shape == x.shape and spec[0].dtype == x.dtype and spec[1].shape == y.shape
    plain = pipeline.train_dataset(tiny_records, batch_size=8, crop_frames=24, seed=0)
    assert deferred.finished_spec(plain.element_spec) == plain.element_spec


def test_modes():
    assert deferred.resolve_mode("pipeline") == "pipeline" and deferred.resolve_mode("device") == "device"
    assert deferred.resolve_mode("auto") == ("device" if tf.config.list_physical_devices("GPU") else "pipeline")
    with pytest.raises(ValueError, match="augment_on"):
        deferred.resolve_mode("gpu")


RUNS = {
    # mixup of the targets, SWA's BN pass on deferred batches, a recipe transform
    "mixup-swa": dict(mixup_alpha=0.4, swa_start=1, swa_every=1, crop_transforms=[{"name": "time_roll",
                                                                                     "max_shift": 5}]),
    # a co-teaching pair's own train_step, CP-JKU's mixed losses (paired after the pipeline)
    "coteaching-mixed-losses": dict(peer="tiny_cnn", forget_rate=0.25, forget_epochs=0, mixup_alpha=0.3,
                                    mixup_mode="losses"),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_training_on_deferred_batches_trains_as_on_the_pipelines(tiny_records, tmp_path, name,
                                                                  restore_op_determinism):
    """The same seeded, deterministic run with the augmentation in the pipeline and in the step: the same
    batches (up to an ulp), hence the same weights, up to the round-off that an ulp grows into."""
    import tiny_model  # noqa: F401  (registers tiny_cnn)
    from tfmood.training.config import TrainConfig
    from tfmood.training.trainer import train

    import keras

    weights = {}
    for mode in ("pipeline", "device"):
        cfg = TrainConfig(model="tiny_cnn", data=tiny_records, epochs=2, batch_size=8, crop_frames=32,
                          eval_segments=2, out=str(tmp_path / mode), export=False, name="run", verbose=0,
                          deterministic=True, seed=3, augment_on=mode, **RUNS[name])
        train(cfg)
        files = ["best.keras"] + (["swa.keras"] if cfg.swa_start else [])  # swa.keras: after the BN pass
        weights[mode] = [w for f in files
                         for w in keras.models.load_model(os.path.join(cfg.out, "run", f)).get_weights()]
    moved = max(float(np.abs(a - b).max() / max(1.0, np.abs(a).max()))
                for a, b in zip(weights["pipeline"], weights["device"]))
    print(f"{name}: max relative weight difference {moved:.3g}")
    assert moved <= 1e-4


def test_tf_data_service_workers_make_the_same_deferred_batches(tiny_records, in_process_service):
    """The service's workers run the deferred pipeline as a graph (the TF reader, no Python): the batches they
    make, finished by the trainer, are the local ones, in the order the workers finish them."""
    from tfmood import data_service

    def run(distributed):
        ds = pipeline.train_dataset(tiny_records, batch_size=8, crop_frames=24, seed=2, reader="tf", epochs=(0, 2),
                                    augment_on="device", **FULL)
        if distributed:
            ds = data_service.distribute(ds, in_process_service)
        fns = recipe_augment.build(FULL["crop_transforms"])
        return sorted((deferred.finish(x, fns).numpy().tobytes(), y.numpy().tobytes()) for x, y in ds)

    local, served = run(False), run(True)
    steps = int(pipeline.train_dataset(tiny_records, batch_size=8, crop_frames=24, seed=2).cardinality())
    assert len(local) == 2 * steps and served == local
