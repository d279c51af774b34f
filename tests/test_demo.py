"""The built-in demo dataset: deterministic, in MTG's layout, learnable."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tfmood import metadata
from tfmood.data import demo


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
