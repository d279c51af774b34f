"""What a user sees when input or records are bad: a sentence naming the file and what to do, no traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfmood.data import convert, demo, pipeline, schema

REPO = Path(__file__).resolve().parents[1]
CONVERT = [sys.executable, str(REPO / "tools" / "convert.py")]
INSPECT = [sys.executable, str(REPO / "tools" / "inspect_records.py")]


def run(cmd):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr[-1500:]
    return result


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors-src")
    splits = demo.generate(str(root), seed=4, sizes={"train": 6, "validation": 4}, frame_range=(20, 30))
    return root, splits


@pytest.fixture
def records(source, tmp_path):
    root, splits = source
    convert.run(splits, convert.Options(str(root / "features"), str(tmp_path / "rec")), num_shards=2, workers=1,
                show_progress=False)
    return tmp_path / "rec"


def test_convert_cli_answers_bad_arguments_and_split_files_with_a_sentence(source, tmp_path):
    root, _ = source
    base = CONVERT + ["--features-root", str(root / "features"), "--out", str(tmp_path / "out")]
    result = run(base + ["--tsv", "train"])
    assert result.returncode == 2 and "expected SPLIT=PATH" in result.stderr
    result = run(base + ["--splits", str(root / "splits"), "--num-shards", "0"])
    assert result.returncode == 2 and "positive integer" in result.stderr

    latin = tmp_path / "latin.tsv"
    text = (root / "splits" / "autotagging_moodtheme-train.tsv").read_bytes().split(b"\r\n")
    text[2] = text[2].replace(b"\t", b"\tcaf\xe9", 1)  # a Latin-1 byte on line 3
    latin.write_bytes(b"\r\n".join(text))
    missing_root = CONVERT + ["--features-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]
    for cmd, expected in [
        (base + ["--tsv", f"train={latin}"], f"{latin}:3: not UTF-8 text (byte 0xe9"),
        (base + ["--splits", str(tmp_path / "no-such-folder")], "No split TSVs found"),
        (missing_root + ["--splits", str(root / "splits")], "is not a directory"),
    ]:
        result = run(cmd)
        assert result.returncode == 1 and result.stderr.startswith("error: ") and expected in result.stderr, (
            cmd, result.stderr[-800:])
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_inspect_refuses_an_unfinished_conversion(records):
    os.remove(records / "manifest.json")  # what a killed or failed conversion leaves
    result = run(INSPECT + [str(records)])
    assert result.returncode == 1 and "unfinished" in result.stderr and "tools/convert.py" in result.stderr
    assert "tracks" not in result.stdout


def test_a_broken_manifest_is_named(records):
    (records / "manifest.json").write_text('{"splits": {"train": ')
    result = run(INSPECT + [str(records), "--json"])
    assert result.returncode == 1 and f"{records / 'manifest.json'} is damaged" in result.stderr
    with pytest.raises(convert.DamagedRecords, match="manifest.json is damaged.*Re-run"):
        pipeline.list_shards(str(records), "train")


def test_corrupted_and_truncated_shards_are_named_with_the_fix(records):
    shard = records / schema.shard_name("train", 1, 2)
    data = bytearray(shard.read_bytes())
    data[20] ^= 0xFF  # inside the first record: its CRC no longer matches
    shard.write_bytes(bytes(data))
    result = run(INSPECT + [str(records)])
    assert result.returncode == 1 and f"Shard {shard} is corrupted" in result.stderr
    assert "Re-run the same `python tools/convert.py` command" in result.stderr

    shard.write_bytes(bytes(data[:-7]))  # a copy cut short
    with pytest.raises(convert.DamagedRecords, match=f"Shard {shard} has {len(data) - 7} bytes"):
        pipeline.list_shards(str(records), "train")
    with pytest.raises(LookupError, match="No split 'test'"):
        pipeline.list_shards(str(records), "test")


def test_evaluate_names_a_corrupted_shard_instead_of_tf_anonymous_data_loss(records, tmp_path):
    """`python -m tfmood.evaluate` on records with a flipped byte: TF says only "corrupted record at N"."""
    import keras

    from tfmood.tags import NUM_TAGS

    inputs = keras.Input((96, None, 1), name="mel")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, padding="same")(inputs))
    keras.Model(inputs, keras.layers.Dense(NUM_TAGS, activation="sigmoid")(x)).save(tmp_path / "m.keras")
    shard = records / schema.shard_name("validation", 0, 2)
    data = bytearray(shard.read_bytes())
    data[20] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = run([sys.executable, "-m", "tfmood.evaluate", "--model", str(tmp_path / "m.keras"), "--data",
                  str(records), "--split", "train", "--segments", "2", "--crop-frames", "16", "--no-figure",
                  "--out", str(tmp_path / "eval")])
    assert result.returncode == 1 and f"Shard {shard} is corrupted" in result.stderr, result.stderr[-1500:]
    assert "Re-run the same `python tools/convert.py` command" in result.stderr


def test_train_names_a_corrupted_shard(records, tmp_path):
    shard = records / schema.shard_name("train", 0, 2)
    data = bytearray(shard.read_bytes())
    data[20] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = run([sys.executable, "-m", "tfmood.train", "--model", "mobilenetv2", "--model-option", "alpha=0.35",
                  "--batch-size", "2", "--crop-frames", "16", "--eval-segments", "2", "--epochs", "1", "--no-export",
                  "--data", str(records), "--out", str(tmp_path / "run")])
    assert result.returncode == 1, result.stderr[-1500:]
    assert f"error: Shard {shard} is corrupted (corrupted record at " in result.stderr, result.stderr[-1500:]
