"""Conversion: exact, deterministic, resumable after SIGKILL, strict on bad input."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfmood.data import convert, demo, schema
from tfmood.data.inspect import inspect_records
from tfmood.tags import TAGS, tag_index

REPO = Path(__file__).resolve().parents[1]


def read_all(records_dir, split):
    out = {}
    for path in sorted(glob.glob(os.path.join(records_dir, f"{split}-*.tfrecord"))):
        for rec in tf.data.TFRecordDataset(path).as_numpy_iterator():
            track_id, labels, feats = schema.decode_numpy(rec)
            out[track_id] = (labels, feats)
    return out


def shard_bytes(records_dir):
    return {os.path.basename(p): Path(p).read_bytes() for p in sorted(glob.glob(f"{records_dir}/*.tfrecord"))}


def test_records_are_exact_copies_of_the_npy_files(tiny_source, tiny_records):
    root, splits = tiny_source
    for split, tracks in splits.items():
        records = read_all(tiny_records, split)
        assert sorted(records) == sorted(t.track_id for t in tracks)
        for t in tracks:
            labels, feats = records[t.track_id]
            assert labels == sorted(tag_index(x) for x in t.tags)
            np.testing.assert_array_equal(feats, np.load(t.feature_path(str(root / "features"))))


def test_manifest_and_inspect_agree_with_the_tsvs(tiny_source, tiny_records):
    _, splits = tiny_source
    manifest = convert.read_manifest(tiny_records)
    stats = inspect_records(tiny_records)
    assert manifest["tags"] == list(TAGS) and manifest["bands"] == 96 and manifest["dtype"] == "float32"
    for split, tracks in splits.items():
        expected = {tag: sum(tag in t.tags for t in tracks) for tag in TAGS}
        assert manifest["splits"][split]["tracks"] == stats[split]["tracks"] == len(tracks)
        assert manifest["splits"][split]["tag_counts"] == stats[split]["tag_counts"] == expected
        assert manifest["splits"][split]["skipped"] == []


def test_inspect_cli_prints_json(tiny_records):
    out = subprocess.run([sys.executable, str(REPO / "tools" / "inspect_records.py"), tiny_records, "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["validation"]["tracks"] == 56


def test_conversion_is_deterministic_and_skips_finished_shards(tiny_source, tiny_records, tmp_path):
    root, splits = tiny_source
    options = convert.Options(features_root=str(root / "features"), out_dir=str(tmp_path))
    convert.run(splits, options, num_shards=2, workers=2, show_progress=False)
    assert shard_bytes(tmp_path) == shard_bytes(tiny_records)
    before = {p: os.stat(p).st_mtime_ns for p in glob.glob(f"{tmp_path}/*.tfrecord")}
    convert.run(splits, options, num_shards=2, workers=1, show_progress=False)
    assert {p: os.stat(p).st_mtime_ns for p in before} == before  # nothing rewritten


def test_sigkill_then_rerun_gives_the_uninterrupted_records(tmp_path):
    src = tmp_path / "src"
    demo.generate(str(src), seed=5, sizes={"train": 120, "validation": 60}, frame_range=(400, 800))
    cmd = [sys.executable, str(REPO / "tools" / "convert.py"), "--splits", str(src / "splits"),
           "--features-root", str(src / "features"), "--num-shards", "12", "--workers", "1"]
    subprocess.run(cmd + ["--out", str(tmp_path / "clean")], check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while len(glob.glob(f"{killed}/*.tfrecord")) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(glob.glob(f"{killed}/*.tfrecord"))
    assert 0 < done < 24, f"the kill should land mid-conversion ({done} of 24 shards done)"
    assert not (killed / "manifest.json").exists()

    subprocess.run(cmd + ["--out", str(killed)], check=True, capture_output=True)
    assert shard_bytes(killed) == shard_bytes(tmp_path / "clean")
    assert not [p for p in os.listdir(killed) if ".tmp-" in p]
    assert json.loads((killed / "manifest.json").read_text()) == json.loads(
        (tmp_path / "clean" / "manifest.json").read_text())


@pytest.fixture
def bad_source(tmp_path):
    root = tmp_path / "bad"
    splits = demo.generate(str(root), seed=7, sizes={"train": 60}, frame_range=(20, 40))
    tracks = splits["train"]
    feats = lambda t: t.feature_path(str(root / "features"))  # noqa: E731
    os.remove(feats(tracks[0]))                                                     # missing
    Path(feats(tracks[1])).write_bytes(b"not a numpy file")                         # unreadable
    np.save(feats(tracks[2]), np.zeros((80, 30), np.float32))                       # wrong band count
    a = np.zeros((96, 30), np.float32); a[3, 4] = np.nan; np.save(feats(tracks[3]), a)  # non-finite
    np.save(feats(tracks[4]), np.zeros((96, 0), np.float32))                        # zero frames
    return root, splits


EXPECTED_REASONS = ["missing file", "unreadable npy", "wrong band count", "non-finite", "zero frames"]


def test_bad_tracks_stop_the_conversion_listing_every_one(bad_source, tmp_path):
    root, splits = bad_source
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "tools" / "convert.py"), "--splits", str(root / "splits"),
           "--features-root", str(root / "features"), "--out", str(out), "--num-shards", "3", "--workers", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 1
    for track, reason in zip(splits["train"][:5], EXPECTED_REASONS):
        line = next(line for line in result.stderr.splitlines() if track.name in line)
        assert reason in line and track.feature_path(str(root / "features")) in line
    assert not (out / "manifest.json").exists()
    assert len(glob.glob(f"{out}/*.tfrecord")) < 3  # shards holding bad tracks are not written

    result = subprocess.run(cmd + ["--skip-bad"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    skipped = json.loads((out / "manifest.json").read_text())["splits"]["train"]["skipped"]
    assert sorted(s["track"] for s in skipped) == sorted(t.name for t in splits["train"][:5])
    reasons = {s["track"]: s["reason"] for s in skipped}
    for track, reason in zip(splits["train"][:5], EXPECTED_REASONS):
        assert reason in reasons[track.name]
    assert len(read_all(str(out), "train")) == 55


def test_wavenet_features_in_both_layouts(tmp_path):
    splits = demo.generate(str(tmp_path / "src"), seed=1, sizes={"train": 4}, frame_range=(10, 20))
    feats = {}
    for i, t in enumerate(splits["train"]):
        x = np.random.default_rng(i).normal(size=(16, 9 + i)).astype(np.float32)
        feats[t.track_id] = x
        np.save(t.feature_path(str(tmp_path / "src" / "features")), x if i % 2 else x.T[None])  # (1, T, 16)
    options = convert.Options(features_root=str(tmp_path / "src" / "features"), out_dir=str(tmp_path / "out"),
                              kind="wavenet", bands=16)
    manifest = convert.run(splits, options, num_shards=1, workers=1, show_progress=False)
    assert manifest["feature_kind"] == "wavenet" and manifest["bands"] == 16
    for track_id, (_, x) in read_all(str(tmp_path / "out"), "train").items():
        np.testing.assert_array_equal(x, feats[track_id])


def test_float16_storage_and_bad_options(tiny_source, tmp_path):
    root, splits = tiny_source
    options = convert.Options(features_root=str(root / "features"), out_dir=str(tmp_path), dtype="float16")
    convert.run({"test": splits["test"][:3]}, options, num_shards=1, workers=1, show_progress=False)
    rec = next(tf.data.TFRecordDataset(glob.glob(f"{tmp_path}/*.tfrecord")).as_numpy_iterator())
    track_id, _, feats = schema.decode_numpy(rec, "float16")
    track = next(t for t in splits["test"] if t.track_id == track_id)
    np.testing.assert_array_equal(feats, np.load(track.feature_path(str(root / "features"))).astype(np.float16))
    with pytest.raises(LookupError, match="mel"):
        convert.run(splits, convert.Options(str(root), str(tmp_path), kind="mfcc"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        convert.run(splits, convert.Options("/nowhere", str(tmp_path)))
