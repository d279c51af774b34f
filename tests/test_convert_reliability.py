"""Conversion under crashes, reruns and hostile input: the manifest is the only index, no stale state accepted."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfmood import metadata
from tfmood.data import convert, demo, pipeline, schema
from tfmood.data.inspect import inspect_records

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "src"
    splits = demo.generate(str(root), seed=11, sizes={"train": 12, "validation": 8}, frame_range=(20, 40))
    return root, splits


def options(root, out, **kw):
    return convert.Options(features_root=str(root / "features"), out_dir=str(out), **kw)


def read_ids(records_dir, split):
    """Track ids as the evaluation pipeline reads them (one per track, TSV order)."""
    ds = pipeline.eval_dataset(str(records_dir), split, crop_frames=8, segments=1)
    return [int(x["track_id"]) for x in ds.as_numpy_iterator()]


def decoded(records_dir, split, dtype):
    out = {}
    for path in pipeline.list_shards(str(records_dir), split):
        for rec in tf.data.TFRecordDataset(path).as_numpy_iterator():
            track_id, _, feats = schema.decode_numpy(rec, dtype)
            out[track_id] = feats
    return out


def shard_files(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tfrecord"))


# === Readers take the shard list from the manifest ===

def test_reconverting_with_fewer_shards_reads_every_track_once(source, tmp_path):
    root, splits = source
    out = tmp_path / "out"
    convert.run(splits, options(root, out), num_shards=3, workers=1, show_progress=False)
    convert.run(splits, options(root, out), num_shards=2, workers=1, show_progress=False)
    ids = read_ids(out, "train")
    assert ids == [t.track_id for t in splits["train"]]  # once each, TSV order (was: 3 + 2 shards read)
    assert inspect_records(str(out))["train"]["tracks"] == len(splits["train"])
    assert shard_files(out) == sorted(schema.shard_name(s, i, 2) for s in splits for i in range(2))


def test_a_split_named_train_extra_is_not_read_as_train(source, tmp_path):
    root, splits = source
    both = {"train": splits["train"], "train-extra": splits["validation"]}
    convert.run(both, options(root, tmp_path), num_shards=2, workers=1, show_progress=False)
    assert read_ids(tmp_path, "train") == [t.track_id for t in splits["train"]]
    assert read_ids(tmp_path, "train-extra") == [t.track_id for t in splits["validation"]]


# === Crash windows and stale state ===

class _Killed(BaseException):
    """Stands for SIGKILL at one instant of the conversion (not an Exception: nothing may catch it)."""


@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_a_kill_between_renames_never_pairs_a_sidecar_with_an_older_shard(source, tmp_path, monkeypatch, kill_at):
    """Convert float32, re-convert float16 and die at the k-th rename: the rerun gives the float16 records."""
    root, splits = source
    splits = {"train": splits["train"]}
    clean = tmp_path / "clean"
    convert.run(splits, options(root, clean, dtype="float16"), num_shards=2, workers=1, show_progress=False)
    out = tmp_path / "out"
    convert.run(splits, options(root, out), num_shards=2, workers=1, show_progress=False)  # float32 shards

    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        real_replace(src, dst)
        if len(calls) == kill_at:
            raise _Killed()

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(_Killed):
        convert.run(splits, options(root, out, dtype="float16"), num_shards=2, workers=1, show_progress=False)
    monkeypatch.setattr(os, "replace", real_replace)
    convert.run(splits, options(root, out, dtype="float16"), num_shards=2, workers=1, show_progress=False)
    for name in shard_files(clean):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), f"{name} is stale after a kill at {kill_at}"


def test_a_shard_damaged_behind_its_sidecar_is_redone(source, tmp_path):
    root, splits = source
    convert.run(splits, options(root, tmp_path), num_shards=2, workers=1, show_progress=False)
    shard = tmp_path / schema.shard_name("train", 0, 2)
    good = shard.read_bytes()
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0xFF  # same size, one bit pattern changed
    shard.write_bytes(bytes(damaged))
    convert.run(splits, options(root, tmp_path), num_shards=2, workers=1, show_progress=False)
    assert shard.read_bytes() == good


def test_a_failed_strict_rerun_leaves_no_manifest_beside_rewritten_shards(source, tmp_path):
    root, splits = source
    convert.run(splits, options(root, tmp_path), num_shards=2, workers=1, show_progress=False)
    assert (tmp_path / "manifest.json").exists()
    os.remove(splits["train"][5].feature_path(str(root / "features")))
    with pytest.raises(convert.ConversionError):
        convert.run(splits, options(root, tmp_path, dtype="float16"), num_shards=2, workers=1, show_progress=False)
    assert not (tmp_path / "manifest.json").exists()  # the float32 manifest must not describe float16 shards
    with pytest.raises(convert.UnfinishedConversion, match="unfinished"):
        pipeline.list_shards(str(tmp_path), "validation")


def test_skipped_tracks_are_retried_once_their_files_are_fixed(source, tmp_path):
    root, splits = source
    path = splits["train"][3].feature_path(str(root / "features"))
    good = np.load(path)
    os.remove(path)
    manifest = convert.run(splits, options(root, tmp_path, skip_bad=True), num_shards=2, workers=1,
                           show_progress=False)
    assert [s["track"] for s in manifest["splits"]["train"]["skipped"]] == [splits["train"][3].name]
    np.save(path, good)
    manifest = convert.run(splits, options(root, tmp_path, skip_bad=True), num_shards=2, workers=1,
                           show_progress=False)
    assert manifest["splits"]["train"]["skipped"] == []
    np.testing.assert_array_equal(decoded(tmp_path, "train", "float32")[splits["train"][3].track_id], good)


# === Input refused before anything is written ===

def test_duplicate_track_ids_are_refused(source, tmp_path):
    root, splits = source
    within = {"train": splits["train"] + splits["train"][2:3]}
    across = {"train": splits["train"], "validation": splits["validation"] + splits["train"][4:5]}
    for case, name in ((within, "train"), (across, "already in train")):
        out = tmp_path / name.replace(" ", "-")
        with pytest.raises(convert.InvalidInput, match=f"duplicate track id.*{name}"):
            convert.run(case, options(root, out), num_shards=2, workers=1, show_progress=False)
        assert not out.exists() or shard_files(out) == []


def test_split_names_and_paths_cannot_leave_the_folders(source, tmp_path):
    root, splits = source
    out = tmp_path / "deep" / "out"
    with pytest.raises(convert.InvalidInput, match="split name '../escape'"):
        convert.run({"../escape": splits["train"]}, options(root, out), num_shards=1, workers=1, show_progress=False)
    assert not list(tmp_path.glob("deep/*.tfrecord"))
    t = splits["train"][0]
    evil = metadata.Track(t.track_id, t.artist_id, t.album_id, "../../outside.mp3", t.duration, t.tags)
    with pytest.raises(convert.InvalidInput, match="outside.mp3"):
        convert.run({"train": [evil]}, options(root, out), num_shards=1, workers=1, show_progress=False)
    tsv = tmp_path / "evil.tsv"
    metadata.write_split(str(tsv), [evil])
    with pytest.raises(ValueError, match=r"evil.tsv:2: PATH '../../outside.mp3'"):
        metadata.read_split(str(tsv))


# === Real processes: the lock, and workers of a killed converter ===

def _convert_cmd(root, out, *extra):
    return [sys.executable, str(REPO / "tools" / "convert.py"), "--splits", str(root / "splits"),
            "--features-root", str(root / "features"), "--out", str(out), *extra]


@pytest.mark.slow  # three processes that import TensorFlow
def test_a_second_converter_is_refused_naming_the_holder(source, tmp_path):
    root, _ = source
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom tfmood.data import convert\n"
                               "with convert.folder_lock(sys.argv[1]):\n    print('locked', flush=True)\n"
                               "    time.sleep(600)", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = subprocess.run(_convert_cmd(root, out, "--num-shards", "2", "--workers", "1"),
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 1 and f"pid {holder.pid}" in result.stderr, result.stderr[-800:]
        assert "Traceback" not in result.stderr and shard_files(out) == []
    finally:
        holder.send_signal(signal.SIGKILL)  # the kernel releases a dead holder's lock
        holder.wait()
    result = subprocess.run(_convert_cmd(root, out, "--num-shards", "2", "--workers", "1"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-800:]


def _children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow  # a multi-process conversion, killed, then redone
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc to find the converter's children")
def test_kill_9_of_the_converter_takes_its_workers_down(tmp_path):
    root = tmp_path / "src"
    demo.generate(str(root), seed=2, sizes={"train": 160, "validation": 160}, frame_range=(200, 400))
    out = tmp_path / "out"
    proc = subprocess.Popen(_convert_cmd(root, out, "--num-shards", "8", "--workers", "2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = []
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            if out.is_dir() and any(".tmp-" in n for n in os.listdir(out)):  # a worker is writing a shard
                break
            time.sleep(0.01)
        children = _children(proc.pid)
        assert proc.poll() is None and len(children) >= 2, "the converter finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 20
        while time.time() < deadline and any(map(_alive, children)):
            time.sleep(0.1)
        assert not [c for c in children if _alive(c)], "processes of the killed converter kept running"
    finally:
        for c in children:  # only the processes this test started
            if _alive(c):
                os.kill(c, signal.SIGKILL)
    assert not (out / "manifest.json").exists()
    subprocess.run(_convert_cmd(root, out, "--num-shards", "8", "--workers", "1"), check=True, capture_output=True)
    assert inspect_records(str(out))["train"]["tracks"] == 160


def test_an_npz_named_npy_is_a_bad_track_with_its_reason(source, tmp_path):
    root, splits = source
    tracks = splits["train"]
    npz = tracks[1].feature_path(str(root / "features"))
    with open(npz, "wb") as f:
        np.savez(f, x=np.zeros((96, 30), np.float32))
    os.remove(tracks[7].feature_path(str(root / "features")))
    out = tmp_path / "out"
    result = subprocess.run(_convert_cmd(root, out, "--num-shards", "2", "--workers", "1"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-1500:]
    line = next(line for line in result.stderr.splitlines() if tracks[1].name in line)
    assert npz in line and ".npz archive" in line
    assert any(tracks[7].name in line and "missing file" in line for line in result.stderr.splitlines())
    assert not [n for n in os.listdir(out) if ".tmp-" in n]
