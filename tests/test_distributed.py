"""Scale-out: Mirrored (2 logical CPUs) and MultiWorkerMirrored (2 processes) = one device, same global batch;
mixed precision and XLA options."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from local_net import free_ports

WORKER = str(Path(__file__).with_name("distributed_worker.py"))


def env(**extra):
    base = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**base, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def weights(folder):
    with np.load(Path(folder) / "weights.npz") as data:
        arrays = [data[f"arr_{i}"] for i in range(len([k for k in data.files if k.startswith("arr_")]))]
        return arrays, int(data["replicas"]), bool(data["chief"])


@pytest.fixture(scope="module")
def single(tiny_records, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    subprocess.run([sys.executable, WORKER, "single", tiny_records, str(out)], env=env(), check=True, timeout=600)
    return weights(out)


def assert_same_weights(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow  # two TensorFlow start-ups
def test_mirrored_on_two_cpus_equals_one_device(tiny_records, tmp_path, single):
    subprocess.run([sys.executable, WORKER, "mirrored", tiny_records, str(tmp_path)], env=env(), check=True,
                   timeout=600)
    got, replicas, _ = weights(tmp_path)
    assert replicas == 2
    assert_same_weights(got, single[0])


@pytest.mark.slow  # three TensorFlow start-ups and a gRPC cluster
def test_two_workers_equal_one_process_and_only_the_chief_writes_results(tiny_records, tmp_path, single):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    configs = [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(2)]
    procs = [subprocess.Popen([sys.executable, WORKER, "worker", tiny_records, str(tmp_path)], env=env(TF_CONFIG=c),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in configs]
    try:
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(outputs)
    chief, replicas, is_chief = weights(tmp_path)
    other, _, other_is_chief = weights(tmp_path / "workers" / "worker-1")
    assert (replicas, is_chief, other_is_chief) == (2, True, False)
    for a, b in zip(chief, other):
        np.testing.assert_array_equal(a, b)  # replicas stay in sync
    assert_same_weights(chief, single[0])
    with np.load(tmp_path / "weights.npz") as data:
        assert not np.allclose(chief[0], data["initial"], atol=1e-3)  # training moved the weights: not vacuous


def test_mixed_precision_keeps_float32_scores_and_trains():
    import tiny_model  # noqa: F401
    from tfmood import models
    from tfmood.training.strategy import configure_precision

    try:
        assert configure_precision(True) == "mixed_float16"
        model = models.build("tiny_cnn", input_shape=(8, None, 1))
        assert model.get_layer("conv").compute_dtype == "float16"
        assert model.get_layer("conv").kernel.dtype == "float32"  # weights stay float32
        model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=False)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        x = np.random.default_rng(0).standard_normal((4, 8, 12, 1)).astype("float32")
        assert model(x).dtype == "float32"
        loss = model.train_on_batch(x, np.zeros((4, 56), "float32"))
        assert np.isfinite(loss)
    finally:
        configure_precision(False)
    assert keras.mixed_precision.global_policy().name == "float32"


def test_registered_heads_compute_scores_in_float32():
    from tfmood.training.strategy import configure_precision
    from tfmood import models

    try:
        configure_precision(True)
        model = models.build("mobilenetv2", input_shape=(32, None, 1), alpha=0.35)
        assert model.outputs[0].dtype == "float32"
    finally:
        configure_precision(False)


def test_xla_flag_reaches_compile():
    from tfmood.training.config import TrainConfig
    from tfmood.training import trainer
    import tiny_model  # noqa: F401

    for xla, expected in ((True, True), (False, False)):
        model = trainer.build_and_compile(TrainConfig(model="tiny_cnn", xla=xla), bands=8)
        assert model.jit_compile is expected
