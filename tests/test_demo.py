"""The built-in demo dataset: deterministic, in MTG's layout, learnable."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tfmood import metadata
from tfmood.data import demo
from tfmood.training.config import DEMO_OVERRIDES


def test_generation_is_deterministic_and_in_mtg_layout(tmp_path):
    sizes = {"train": 56, "validation": 56}
    a = demo.generate(str(tmp_path / "a"), sizes=sizes, frame_range=(30, 60))
    b = demo.generate(str(tmp_path / "b"), sizes=sizes, frame_range=(30, 60))
    assert a == b
    track = a["train"][0]
    x = np.load(track.feature_path(str(tmp_path / "a" / "features")))
    np.testing.assert_array_equal(x, np.load(track.feature_path(str(tmp_path / "b" / "features"))))
    assert x.dtype == np.float32 and x.shape[0] == 96 and x.max() <= 20 and x.min() > -201  # MTG's dB scale
    read = metadata.read_split(str(tmp_path / "a" / "splits" / "autotagging_moodtheme-train.tsv"))
    key = lambda tracks: [(t.track_id, t.artist_id, t.path, t.tags, round(t.duration, 1)) for t in tracks]  # noqa
    assert key(read) == key(a["train"])
    assert {t for tr in read for t in tr.tags} == set(demo.TAGS)


def test_each_tag_has_its_own_pattern():
    rng = np.random.default_rng(0)
    signatures = {tuple(np.nonzero(demo.tag_texture(t, 400, rng).any(axis=1))[0]) for t in range(56)}
    assert len(signatures) == 56


@pytest.mark.slow
def test_demo_run_learns(tmp_path):
    """The README's first command: validation PR-AUC-macro >= 0.5 where chance is <= 0.2."""
    subprocess.run([sys.executable, "-m", "tfmood.train", "--model", "mobilenetv2", "--no-export"],
                   cwd=tmp_path, check=True, capture_output=True)
    summary = json.loads((tmp_path / "runs" / "mobilenetv2" / "summary.json").read_text())
    manifest = json.loads((tmp_path / "records" / "demo" / "manifest.json").read_text())
    val = manifest["splits"]["validation"]
    chance = np.mean([n / val["tracks"] for n in val["tag_counts"].values()])  # PR-AUC of random scores
    assert chance <= 0.2
    assert summary["validation"]["PR-AUC-macro"] >= 0.5
    # Visible learning: the per-epoch validation figure the user sees printed rises well above its first value.
    history = [json.loads(line) for line in (tmp_path / "runs" / "mobilenetv2" / "history.jsonl").open()]
    curve = [h["val_PR-AUC-macro"] for h in history]
    assert len(curve) == DEMO_OVERRIDES["epochs"] and max(curve[-2:]) >= curve[0] + 0.15, curve


# Two real processes start on a fresh folder at the same moment (the two workers of a multi-worker job).
_CONCURRENT_START = """
import sys, time
from tfmood.data import demo
demo.VARIANTS[demo.BANDS] = ("demo", "demo-source", "mel", {"train": 56, "validation": 56, "test": 56})
demo.generate_original = demo.generate
def slow_generate(*args, **kwargs):  # widen the window in which the other process starts
    time.sleep(2)
    return demo.generate_original(*args, **kwargs, frame_range=(30, 50))
demo.generate = slow_generate
while time.time() < float(sys.argv[2]):
    time.sleep(0.01)
print("RECORDS", demo.ensure_demo_records(sys.argv[1], show_progress=False), flush=True)
"""


@pytest.mark.slow  # two TensorFlow start-ups and a generation: ~1-2 min on a busy 2-core machine
def test_concurrent_first_use_generates_once_and_both_processes_get_the_records(tmp_path):
    import time

    start = str(time.time() + 8)  # both processes have imported TensorFlow by then
    procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT_START, str(tmp_path), start],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    assert all(f"RECORDS {tmp_path / 'demo'}" in out for out in outputs), "\n".join(outputs)
    assert sum("Generating the built-in demo dataset" in out for out in outputs) == 1  # one generator
    assert sum("Waiting for" in out for out in outputs) == 1  # the other one waited for it
    manifest = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    assert manifest["demo_version"] == demo.DEMO_VERSION and manifest["splits"]["train"]["tracks"] == 56
    assert not list(tmp_path.rglob("*.tmp*"))  # no temp file left behind


def test_generation_waits_at_most_the_timeout_for_a_live_holder(tmp_path):
    import fcntl

    lock = tmp_path / ".demo.lock"
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("otherhost pid 1\n")
        held.flush()
        with pytest.raises(TimeoutError, match="otherhost pid 1"):
            with demo._generation_lock(str(lock), timeout_s=1.0):
                pass
