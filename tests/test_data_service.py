"""Training batches made by tf.data service: the pure-TF crop reader, the epochs mode, and a dispatcher with
two workers as real processes on 127.0.0.1 (`python -m tfmood.data_service`), against the local pipeline."""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from tfmood import data_service
from tfmood.data import convert, framestore, pipeline, tf_reader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROP = 32
CODE = 10_000  # ramp features: value = track ordinal * CODE + frame, so a crop tells where it was cut


@pytest.fixture(scope="module")
def ramp(tiny_source, tmp_path_factory):
    """The tiny train split converted with features that encode (track ordinal, frame); 2 shards.

    Returns (records folder, track ids by ordinal)."""
    _, splits = tiny_source
    features = tmp_path_factory.mktemp("ramp-features")
    for k, track in enumerate(splits["train"]):
        frames = round(track.duration * 12000 / 256)
        path = track.feature_path(str(features))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path, np.repeat((k * CODE + np.arange(frames, dtype=np.float32))[None], 96, axis=0))
    out = str(tmp_path_factory.mktemp("ramp-records"))
    convert.run({"train": splits["train"]}, convert.Options(features_root=str(features), out_dir=out),
                num_shards=2, workers=1, show_progress=False)
    return out, [int(track.track_id) for track in splits["train"]]


def origins(x):
    """(track ordinal, start) of each un-augmented ramp crop `[n, bands, crop, 1]`."""
    first = x[:, 0, 0, 0].astype(np.int64)
    np.testing.assert_array_equal(x[:, 0, :, 0] - first[:, None], np.arange(x.shape[2])[None].repeat(len(x), 0))
    return list(zip((first // CODE).tolist(), (first % CODE).tolist()))


def test_tf_reader_crops_equal_frame_store_crops(tiny_records):
    store = framestore.ensure(tiny_records, "train")
    rng = np.random.default_rng(0)
    for crop in (CROP, 100):  # 100 > some tracks' 40-120 frames: from the repeated track, as FrameStore's
        windows = tf_reader.ensure(store, tf_reader.window_frames_for(crop))
        assert windows.window_frames < crop  # a crop spans several windows
        room = store.effective_frames(crop) - crop + 1
        firsts, lasts, middles = np.zeros_like(room), room - 1, rng.integers(room)
        read = tf.function(lambda t, s: windows.crops(t, s, crop))  # as in the pipeline: traced, not eager
        # Each kind of start alone (a call's crops are read together: one crop's windows must not stand in
        # for another's), then all of them at once, in random order (crops sharing windows).
        tracks = np.arange(len(store))
        calls = [(tracks, starts) for starts in (firsts, lasts, middles)]
        mixed = rng.permutation(3 * len(store))
        calls.append((np.tile(tracks, 3)[mixed], np.concatenate([firsts, lasts, middles])[mixed]))
        for t, s in calls:
            got = read(tf.constant(t, tf.int32), tf.constant(s, tf.int32)).numpy()
            np.testing.assert_array_equal(got, store.crops(t, s, crop))


def test_tf_reader_stops_with_a_clear_error_when_its_windows_are_rebuilt_or_gone(tiny_records, tmp_path):
    store = framestore.ensure(tiny_records, "train")
    copy = tmp_path / "tf-windows"
    shutil.copytree(tf_reader.ensure(store, tf_reader.window_frames_for(CROP)).folder, copy)
    windows = tf_reader.WindowStore(store, str(copy))
    read = tf.function(lambda t, s: windows.crops(t, s, CROP))
    tracks, starts = tf.constant([0, 1]), tf.constant([0, 3])
    np.testing.assert_array_equal(read(tracks, starts).numpy(), store.crops([0, 1], [0, 3], CROP))
    meta = json.loads((copy / tf_reader.WINDOWS_JSON).read_text())
    (copy / tf_reader.WINDOWS_JSON).write_text(json.dumps({**meta, "fingerprint": "another store"}))
    with pytest.raises(tf.errors.InvalidArgumentError, match="rebuilt after this dataset was made"):
        read(tracks, starts)
    shutil.rmtree(copy)  # as on a service worker that does not see the store (SqlDataset itself would crash)
    with pytest.raises(tf.errors.NotFoundError, match=tf_reader.WINDOWS_JSON):
        read(tracks, starts)


def test_tf_reader_gives_the_same_batches_as_the_numpy_reader(tiny_records):
    def epoch(reader):
        ds = pipeline.train_dataset(tiny_records, batch_size=8, crop_frames=CROP, mixup_alpha=0.3, seed=5,
                                    deterministic=True, reader=reader)
        return [(x.numpy(), y.numpy()) for x, y in ds]
    numpy_, tf_ = epoch("numpy"), epoch("tf")
    assert len(numpy_) == len(tf_) > 1
    for (xa, ya), (xb, yb) in zip(numpy_, tf_):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    with pytest.raises(ValueError, match="reader"):
        pipeline.train_dataset(tiny_records, crop_frames=CROP, reader="python")


def test_epochs_mode_covers_every_track_each_epoch_and_draws_anew(ramp):
    ramp, ids = ramp
    store = framestore.ensure(ramp, "train")
    row = {int(track_id): t for t, track_id in enumerate(store.track_id)}
    room = store.effective_frames(CROP) - CROP + 1
    room = [room[row[track_id]] for track_id in ids]  # by ramp ordinal
    ds = pipeline.train_dataset(ramp, batch_size=8, crop_frames=CROP, crops_per_track=1, spec_augment=False,
                                seed=1, reader="tf", epochs=(0, 3), deterministic=True)
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    steps = len(store) // 8
    assert len(batches) == 3 * steps
    epochs = [batches[e * steps: (e + 1) * steps] for e in range(3)]
    starts = []
    for epoch in epochs:
        crops = dict(origins(np.concatenate([x for x, _ in epoch])))
        assert sorted(crops) == list(range(len(store)))  # every track once per epoch
        assert all(0 <= s < room[t] for t, s in crops.items())
        starts.append([crops[t] for t in range(len(store))])
        np.testing.assert_allclose(np.concatenate([y for _, y in epoch]).mean(0), store.labels.mean(0), atol=1e-6)
    assert np.mean(np.equal(starts[0], starts[1])) < 0.5 and np.mean(np.equal(starts[1], starts[2])) < 0.5
    # a resumed run (epochs 2..2) reads the same epoch 2 as the whole run
    resumed = pipeline.train_dataset(ramp, batch_size=8, crop_frames=CROP, crops_per_track=1, spec_augment=False,
                                     seed=1, reader="tf", epochs=(2, 3), deterministic=True)
    for (xa, _), (xb, _) in zip(epochs[2], resumed):
        np.testing.assert_array_equal(xa, xb.numpy())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args):
    env = {**os.environ, "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "tfmood.data_service", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for_line(proc, text, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if text in line:
            return
    raise AssertionError(f"no {text!r} from {proc.args}: {''.join(lines)}")


@pytest.fixture(scope="module")
def service():
    """A dispatcher and two workers as processes on 127.0.0.1, stopped with SIGTERM at the end (each must exit
    0). Their start-up (three TensorFlow imports) takes 15-40 s on a loaded 2-core machine: the tests that use
    them are slow; `in_process_service` runs the same servers as threads of the test process."""
    port = _free_port()
    procs = [_start("dispatcher", "--port", str(port), "--host", "127.0.0.1")]
    try:  # all three start at once (the workers wait for the dispatcher): TF's import dominates
        procs += [_start("worker", "--dispatcher", f"grpc://127.0.0.1:{port}", "--port", str(_free_port()),
                         "--host", "127.0.0.1") for _ in range(2)]
        _wait_for_line(procs[0], "listening")
        for proc in procs[1:]:
            _wait_for_line(proc, "serving dispatcher")
        yield f"grpc://127.0.0.1:{port}", procs
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=30) for proc in reversed(procs)]
    assert codes == [0, 0, 0]  # clean SIGTERM


@pytest.fixture(scope="module")
def in_process_service():
    from tensorflow.data.experimental import service as tf_service

    dispatcher = tf_service.DispatchServer(tf_service.DispatcherConfig(port=_free_port()))
    hostport = data_service.address(dispatcher.target)
    workers = [tf_service.WorkerServer(tf_service.WorkerConfig(dispatcher_address=hostport, port=_free_port()))
               for _ in range(2)]
    yield dispatcher.target
    for server in (*workers, dispatcher):
        server.stop()


def _digest(x, y):
    return hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()


def _same_batches_through(address, ramp):
    """The local plan's batches and the service's, un-augmented then augmented, checked equal."""

    def run(distributed, **options):
        ds = pipeline.train_dataset(ramp, batch_size=8, crop_frames=CROP, crops_per_track=1, seed=2, reader="tf",
                                    epochs=(0, 2), **options)
        if distributed:
            ds = data_service.distribute(ds, address)
        return [(x.numpy(), y.numpy()) for x, y in ds]

    # Un-augmented: the multiset of (track, start) crops of the run is the local plan's, with the labels.
    local, served = run(False, spec_augment=False), run(True, spec_augment=False)
    crops = [Counter(origins(np.concatenate([x for x, _ in batches]))) for batches in (local, served)]
    assert crops[0] == crops[1] and sum(crops[1].values()) == 2 * len(framestore.ensure(ramp, "train"))
    # Augmented (SpecAugment + mixup): the same batches, in the order the workers finish them.
    local, served = run(False, mixup_alpha=0.3), run(True, mixup_alpha=0.3)
    assert len(served) == len(local)
    assert sorted(_digest(x, y) for x, y in served) == sorted(_digest(x, y) for x, y in local)
    xs = [np.concatenate([x for x, _ in batches]) for batches in (local, served)]
    ys = [np.concatenate([y for _, y in batches]) for batches in (local, served)]
    np.testing.assert_allclose(ys[1].mean(0), ys[0].mean(0), atol=1e-6)
    np.testing.assert_allclose([xs[1].mean(), xs[1].std()], [xs[0].mean(), xs[0].std()], rtol=1e-6)


def test_the_service_makes_the_local_pipelines_batches(ramp, in_process_service):
    _same_batches_through(in_process_service, ramp[0])


@pytest.mark.slow
def test_two_worker_processes_make_the_local_pipelines_batches(ramp, service):
    address, procs = service
    _same_batches_through(address, ramp[0])
    assert all(proc.poll() is None for proc in procs)


def test_clear_errors():
    with pytest.raises(ValueError, match="grpc://HOST:PORT"):
        data_service.address("127.0.0.1")
    with pytest.raises(ValueError, match="--data-service"):
        data_service.distribute(tf.data.Dataset.range(3), f"grpc://127.0.0.1:{_free_port()}")
    worker = _start("worker", "--dispatcher", f"127.0.0.1:{_free_port()}", "--wait-s", "1")
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode != 0 and "no dispatcher answers" in out


@pytest.mark.slow
def test_training_reads_its_batches_from_the_service(tiny_records, service, tmp_path):
    import tiny_model  # noqa: F401  (registers "tiny_cnn")
    from tfmood.training.config import TrainConfig
    from tfmood.training.trainer import train

    cfg = TrainConfig(model="tiny_cnn", data=tiny_records, epochs=3, batch_size=8, crop_frames=CROP, eval_segments=2,
                      mixup_alpha=0.3, mixup_mode="losses", out=str(tmp_path / "runs"), export=False, name="served",
                      verbose=0, data_service=service[0])
    summary = train(cfg)
    with open(tmp_path / "runs" / "served" / "history.jsonl") as f:
        history = [json.loads(line) for line in f]
    assert [h["epoch"] for h in history] == [1, 2, 3] and all(np.isfinite(h["loss"]) for h in history)
    assert 0 < summary["validation"]["PR-AUC-macro"] <= 1
    with pytest.raises(ValueError, match="grpc://HOST:PORT"):
        TrainConfig(data_service="localhost").validate()


def _shares(records, address=None):
    """Each of two trainers' batches as `trainer.training_data` gives them (`worker=(i, 2)`), made locally or,
    with `address`, by the service (a job per trainer): per trainer, the sorted digests of its batches."""
    from tfmood.training.config import TrainConfig
    from tfmood.training.trainer import training_data

    cfg = TrainConfig(data=records, batch_size=8, crop_frames=CROP, crops_per_track=1, mixup_alpha=0.3, seed=2)
    shares = []
    for index in range(2):
        ds, _ = training_data(cfg, records, (index, 2), address, reader="tf", epochs=(0, 2))
        shares.append(sorted(_digest(x.numpy(), y.numpy()) for x, y in ds))
    return shares


def test_each_trainer_gets_its_own_share_from_the_service(ramp, in_process_service):
    local, served = _shares(ramp[0]), _shares(ramp[0], in_process_service)
    steps = len(framestore.ensure(ramp[0], "train")) // 8
    assert len(local[0]) == len(local[1]) == 2 * steps and not set(local[0]) & set(local[1])
    assert served == local  # trainer i: its own rows of every global batch, each once (in the workers' order)


@pytest.mark.slow
def test_two_trainers_train_on_batches_from_the_service(tiny_records, service, tmp_path):
    """Several trainers (TF_CONFIG) + --data-service, all as processes: the run completes on both trainers,
    they agree (one model, synchronized), the chief's summary is sane, the service's workers read the run's
    crops (the trainers did not make their batches themselves) and live on. (Each trainer's share:
    `test_each_trainer_gets_its_own_share_from_the_service`.)"""
    from test_distributed_cli import TINY, cluster_configs, finish, train

    address, servers = service
    args = [*TINY, "--data", tiny_records, "--epochs", "2", "--data-service", address]
    logs = [tmp_path / f"trainer-{i}.log" for i in range(2)]
    read_before = sum(_read_bytes(proc.pid) for proc in servers[1:])
    procs = [train(args, tmp_path, config, log=log) for config, log in zip(cluster_configs(), logs)]
    finish(procs)
    store = framestore.ensure(tiny_records, "train")
    crops = 2 * (pipeline.crop_counts(store.frames, CROP).sum() // 8 * 8)  # 2 epochs of global batches, no mixup
    assert sum(_read_bytes(proc.pid) for proc in servers[1:]) - read_before >= crops * CROP * store.row_bytes
    outputs = [log.read_text() for log in logs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    assert "with 2 replica(s)" in outputs[0]
    lines = [[line for line in out.splitlines() if line.startswith(("epoch ", "Validation"))] for out in outputs]
    assert len(lines[0]) >= 3 and lines[0] == [line.replace("workers/worker-1/", "") for line in lines[1]], lines
    run = tmp_path / "runs" / "mobilenetv2"
    summary = json.loads((run / "summary.json").read_text())
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2] and all(np.isfinite(h["loss"]) for h in history)
    assert 0 < summary["validation"]["PR-AUC-macro"] <= 1
    assert all(proc.poll() is None for proc in servers)


def _read_bytes(pid):
    """Bytes process `pid` has read through the read() family (/proc/PID/io `rchar`)."""
    with open(f"/proc/{pid}/io") as f:
        return int(dict(line.split(": ") for line in f.read().splitlines())["rchar"])
