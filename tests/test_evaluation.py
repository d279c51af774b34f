"""Official metrics, thresholds, submission files, report and the `python -m tfmood.evaluate` CLI."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from tfmood import evaluate, metadata
from tfmood.evaluation import (
    METRIC_KEYS, average_snapshots, decide, fit_thresholds, format_metrics, load_thresholds, official_metrics,
    save_thresholds, write_report, write_submission)
from tfmood.tags import NUM_TAGS, PREFIX, TAGS

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
RESULTS = SHARED / "jamendo" / "results"


def synthetic(n=120, seed=0, signal=1.0):
    """Labels with every tag present (and absent) + scores that are informative with strength `signal`."""
    rng = np.random.default_rng(seed)
    gt = rng.random((n, NUM_TAGS)) < 0.08
    gt[np.arange(n), np.arange(n) % NUM_TAGS] = True
    scores = 1 / (1 + np.exp(-(signal * gt + rng.normal(0, 1, gt.shape))))
    return gt, scores


@pytest.fixture(scope="module")
def mtg():
    if not RESULTS.is_dir():
        pytest.skip(f"{RESULTS} absent (shared reference data)")
    table = dict(line.split("\t") for line in (RESULTS / "baseline_vggish_results.tsv").read_text().splitlines())
    return {"gt": np.load(RESULTS / "groundtruth.npy"),
            "pred": np.load(RESULTS / "baseline_vggish_predictions.npy"),
            "thresholds_path": RESULTS / "baseline_vggish_thresholds.txt",
            "results": {k: float(v) for k, v in table.items()}}


# === Official metrics ===

def test_official_metrics_reproduce_mtg_results(mtg):
    thresholds = load_thresholds(str(mtg["thresholds_path"]))
    results = official_metrics(mtg["gt"], mtg["pred"], decide(mtg["pred"], thresholds))
    assert list(results) == list(METRIC_KEYS) == list(mtg["results"])
    for key, value in results.items():
        assert round(value, 6) == mtg["results"][key], key
    assert round(results["PR-AUC-macro"], 6) == 0.107734
    assert format_metrics(results) == (RESULTS / "baseline_vggish_results.tsv").read_text()  # MTG's layout


def test_official_metrics_without_decisions_gives_auc_only():
    gt, scores = synthetic()
    assert set(official_metrics(gt, scores)) == {"ROC-AUC-macro", "PR-AUC-macro", "ROC-AUC-micro", "PR-AUC-micro"}


def test_official_metrics_names_shapes_and_undefined_tags():
    gt, scores = synthetic()
    with pytest.raises(ValueError, match=r"predictions shape \(119, 56\).*\(120, 56\)"):
        official_metrics(gt, scores[:-1])
    with pytest.raises(ValueError, match=r"decisions shape \(120, 55\)"):
        official_metrics(gt, scores, decisions=gt[:, :-1])
    gt[:, TAGS.index("heavy")] = False
    gt[:, TAGS.index("sad")] = True
    with pytest.raises(ValueError, match=r"heavy \(0/120 positive\), sad \(120/120 positive\)"):
        official_metrics(gt, scores)


def test_fast_average_precision_matches_sklearn_with_ties():
    from sklearn.metrics import average_precision_score

    from tfmood.evaluation.metrics import average_precision_per_tag, pr_auc_macro

    gt, scores = synthetic(seed=6)
    for s in (scores, np.round(scores, 1)):  # rounding creates many ties
        np.testing.assert_allclose(average_precision_per_tag(gt, s), average_precision_score(gt, s, average=None),
                                   rtol=0, atol=1e-12)
        assert pr_auc_macro(gt, s) == pytest.approx(average_precision_score(gt, s, average="macro"), abs=1e-12)


# === Thresholds ===

def test_thresholds_fitted_on_test_reproduce_mtg_file(mtg, tmp_path):
    fitted = fit_thresholds(mtg["gt"], mtg["pred"])
    np.testing.assert_array_equal(fitted, load_thresholds(str(mtg["thresholds_path"])))  # exact, not close
    save_thresholds(str(tmp_path / "thr.tsv"), fitted)
    assert (tmp_path / "thr.tsv").read_bytes() == mtg["thresholds_path"].read_bytes()  # byte for byte


def test_fitted_threshold_maximises_each_tag_f_score():
    gt, scores = synthetic(seed=1)
    thresholds = fit_thresholds(gt, scores)
    for i in range(NUM_TAGS):
        candidates = scores[:, i][None, :] >= np.unique(scores[:, i])[:, None]  # every `score >= t` decision
        tp = (candidates & gt[:, i]).sum(axis=1)
        best = (2 * tp / (candidates.sum(axis=1) + gt[:, i].sum())).max()
        # The curve's point at threshold t is `score >= t`; MTG then decides `score > t` (strict), which
        # drops the threshold track itself: reproduced on purpose, as the official decisions.
        assert f1_score(gt[:, i], scores[:, i] >= thresholds[i]) == pytest.approx(best), TAGS[i]


def test_decide_is_strict():
    scores = np.full((2, NUM_TAGS), 0.5)
    scores[1] = 0.6
    np.testing.assert_array_equal(decide(scores, np.full(NUM_TAGS, 0.5)), [[False] * NUM_TAGS, [True] * NUM_TAGS])


def test_tag_without_positives_gets_infinite_threshold_and_a_warning():
    gt, scores = synthetic()
    gt[:, TAGS.index("travel")] = False
    with pytest.warns(UserWarning, match="travel"):
        thresholds = fit_thresholds(gt, scores)
    assert thresholds[TAGS.index("travel")] == np.inf and np.isfinite(np.delete(thresholds, TAGS.index("travel"))).all()


def test_thresholds_file_round_trip_bare_names_any_order(tmp_path):
    values = np.linspace(0.01, 0.9, NUM_TAGS).astype(np.float32)
    save_thresholds(str(tmp_path / "t.tsv"), values)
    lines = (tmp_path / "t.tsv").read_text().splitlines()
    assert lines[0].startswith(f"{PREFIX}action\t") and len(lines) == NUM_TAGS
    np.testing.assert_array_equal(load_thresholds(str(tmp_path / "t.tsv")), values)
    bare = [line.removeprefix(PREFIX) for line in reversed(lines)]
    (tmp_path / "bare.tsv").write_text("\n".join(bare) + "\n")
    np.testing.assert_array_equal(load_thresholds(str(tmp_path / "bare.tsv")), values)


def test_thresholds_file_errors_name_the_problem(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("".join(f"{t}\t0.5\n" for t in TAGS[:-1]))
    with pytest.raises(ValueError, match="no threshold for 1 tag.*uplifting"):
        load_thresholds(str(path))
    path.write_text("".join(f"{t}\t0.5\n" for t in TAGS) + "grumpy\t0.1\n")
    with pytest.raises(ValueError, match=r"t.tsv:57: Unknown mood/theme tag 'grumpy'"):
        load_thresholds(str(path))


# === Submission, report, snapshot averaging ===

def test_write_submission_dtypes_and_atomicity(tmp_path):
    gt, scores = synthetic()
    paths = write_submission(str(tmp_path / "sub"), scores.astype(np.float32), scores > 0.5)
    predictions, decisions = np.load(paths["predictions"]), np.load(paths["decisions"])
    assert predictions.dtype == np.float64 and decisions.dtype == bool and predictions.shape == gt.shape
    np.testing.assert_array_equal(decisions, scores > 0.5)
    assert sorted(os.listdir(tmp_path / "sub")) == ["decisions.npy", "predictions.npy"]  # no temporary left
    with pytest.raises(ValueError, match=r"predictions must have shape \[n_tracks, 56\]. Received: \(120, 55\)"):
        write_submission(str(tmp_path / "bad"), scores[:, :-1], scores[:, :-1] > 0.5)
    assert not (tmp_path / "bad").exists() or not os.listdir(tmp_path / "bad")


def test_report_files_hold_the_right_numbers(tmp_path):
    gt, scores = synthetic(seed=2)
    thresholds = fit_thresholds(gt, scores)
    results = official_metrics(gt, scores, decide(scores, thresholds))
    paths = write_report(str(tmp_path), gt, scores, thresholds, results, title="synthetic")
    header, *rows = [line.split("\t") for line in Path(paths["tsv"]).read_text().splitlines()]
    assert header == ["tag", "positives", "PR-AUC", "ROC-AUC", "threshold", "precision", "recall", "F-score"]
    assert [r[0] for r in rows] == list(TAGS)
    assert [int(r[1]) for r in rows] == gt.sum(axis=0).tolist()
    assert np.mean([float(r[2]) for r in rows]) == pytest.approx(results["PR-AUC-macro"], abs=1e-12)
    assert np.mean([float(r[3]) for r in rows]) == pytest.approx(results["ROC-AUC-macro"], abs=1e-12)
    assert np.mean([float(r[7]) for r in rows]) == pytest.approx(results["F-score-macro"], abs=1e-12)
    np.testing.assert_array_equal([float(r[4]) for r in rows], thresholds)
    saved = json.loads(Path(paths["json"]).read_text())
    assert saved["metrics"] == results and len(saved["per_tag"]) == NUM_TAGS
    assert Path(paths["figure"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"| PR-AUC-macro | {results['PR-AUC-macro']:.6f} |" in Path(paths["markdown"]).read_text()


def test_average_snapshots_uniform_and_weighted():
    a, b = np.zeros((3, NUM_TAGS)), np.ones((3, NUM_TAGS))
    np.testing.assert_allclose(average_snapshots([a, b]), 0.5)
    np.testing.assert_allclose(average_snapshots([a, b], weights=[1, 3]), 0.75)  # normalised to sum 1
    with pytest.raises(ValueError, match="same shape"):
        average_snapshots([a, b[:2]])
    with pytest.raises(ValueError, match=r">= 0.*Received: \[-1.0, 2.0\]"):
        average_snapshots([a, b], weights=[-1, 2])


# === CLI, saved-predictions mode ===

def write_arrays(folder, **arrays):
    paths = {}
    for name, value in arrays.items():
        paths[name] = str(folder / f"{name}.npy")
        np.save(paths[name], value)
    return paths


def test_evaluate_cli_fits_thresholds_on_validation(tmp_path):
    val_gt, val_scores = synthetic(seed=3)
    test_gt, test_scores = synthetic(seed=4)
    p = write_arrays(tmp_path, val=val_scores, val_gt=val_gt, test=test_scores, test_gt=test_gt)
    out = tmp_path / "out"
    results = evaluate.main(["--predictions", p["test"], "--groundtruth", p["test_gt"], "--val-predictions",
                             p["val"], "--val-groundtruth", p["val_gt"], "--out", str(out), "--no-figure"])
    thresholds = fit_thresholds(val_gt, val_scores)
    assert results == official_metrics(test_gt, test_scores, decide(test_scores, thresholds))
    np.testing.assert_array_equal(np.load(out / "decisions.npy"), test_scores > thresholds)
    np.testing.assert_array_equal(load_thresholds(str(out / "thresholds.tsv")), thresholds)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"] == results and saved["thresholds"] == "fitted on validation"
    assert saved["validation"] == official_metrics(val_gt, val_scores)
    for name in ("val_predictions", "val_groundtruth", "test_predictions", "test_groundtruth"):
        assert (out / f"{name}.npy").exists(), name
    assert (out / "per_tag.tsv").exists() and not (out / "report.png").exists()  # --no-figure


def tiny_split(path, gt, first_id=1):
    tracks = [metadata.Track(track_id=first_id + i, artist_id=f"artist_{i}", album_id=f"album_{i}",
                             path=f"{(first_id + i) % 100:02d}/{first_id + i}.mp3", duration=30.0,
                             tags=tuple(TAGS[j] for j in np.flatnonzero(row)))
              for i, row in enumerate(gt)]
    metadata.write_split(str(path), tracks)
    return str(path)


def test_evaluate_cli_labels_from_split_tsv_and_given_thresholds(tmp_path):
    test_gt, test_scores = synthetic(seed=5)
    tsv = tiny_split(tmp_path / "autotagging_moodtheme-test.tsv", test_gt, first_id=500)
    thresholds = np.full(NUM_TAGS, 0.6)
    save_thresholds(str(tmp_path / "thr.tsv"), thresholds)
    p = write_arrays(tmp_path, test=test_scores)
    results = evaluate.main(["--predictions", p["test"], "--split-tsv", tsv, "--thresholds",
                             str(tmp_path / "thr.tsv"), "--out", str(tmp_path / "out"), "--no-figure"])
    assert results == official_metrics(test_gt, test_scores, test_scores > 0.6)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "test_track_ids.npy"), np.arange(500, 620))


def test_saved_predictions_mode_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, tfmood.evaluate, tfmood.ensemble; print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_evaluate_cli_rejects_mixed_modes(tmp_path, capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--predictions", "a.npy", "--model", "m.keras", "--out", str(tmp_path)])
    assert "either --predictions" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(["--predictions", "a.npy", "--out", str(tmp_path)])
    assert "--split-tsv" in capsys.readouterr().err


# === CLI, trained-model mode (TensorFlow) ===

BANDS, FRAMES = 8, 40


def tiny_records(root):
    """Validation and test splits (every tag present) of 8-band tracks, laid out as `convert` does:
    track i of the TSV in shard i % 2, and a manifest."""
    import tensorflow as tf

    from tfmood.data import schema

    rng = np.random.default_rng(0)
    splits = {}
    for offset, split in ((1, "validation"), (1001, "test")):
        gt, _ = synthetic(n=60, seed=offset)
        splits[split] = metadata.read_split(tiny_split(root / f"{split}.tsv", gt, first_id=offset))
        for shard in range(2):
            path = root / "records" / schema.shard_name(split, shard, 2)
            os.makedirs(path.parent, exist_ok=True)
            with tf.io.TFRecordWriter(str(path)) as writer:
                for track in splits[split][shard::2]:
                    features = rng.normal(size=(BANDS, int(rng.integers(20, 70)))).astype(np.float32)
                    writer.write(schema.serialize(track.track_id, np.flatnonzero(track.label_vector()), features))
    manifest = {"schema_version": schema.SCHEMA_VERSION, "dtype": "float32", "bands": BANDS,
                "splits": {s: {"tracks": len(t), "shards": [schema.shard_name(s, i, 2) for i in range(2)]}
                           for s, t in splits.items()}}
    (root / "records" / "manifest.json").write_text(json.dumps(manifest))
    return str(root / "records"), splits


def tiny_model(path):
    import keras

    inputs = keras.Input((BANDS, None, 1), name="mel")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(NUM_TAGS, activation="sigmoid")(x))
    model.save(path)
    return model


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("model_mode")
    records, splits = tiny_records(root)
    model = tiny_model(str(root / "m.keras"))
    args = ["--data", records, "--segments", "2", "--crop-frames", "16", "--batch-size", "8", "--no-figure"]
    return {"root": root, "splits": splits, "model": model, "args": args}


def test_evaluate_cli_scores_a_keras_model(tiny_setup):
    root, splits = tiny_setup["root"], tiny_setup["splits"]
    results = evaluate.main(["--model", str(root / "m.keras"), *tiny_setup["args"], "--out", str(root / "keras")])
    out = root / "keras"
    np.testing.assert_array_equal(np.load(out / "test_track_ids.npy"), [t.track_id for t in splits["test"]])
    np.testing.assert_array_equal(np.load(out / "val_track_ids.npy"), [t.track_id for t in splits["validation"]])
    test_gt = np.load(out / "test_groundtruth.npy")
    np.testing.assert_array_equal(test_gt, metadata.label_matrix(splits["test"]))
    thresholds = fit_thresholds(np.load(out / "val_groundtruth.npy"), np.load(out / "val_predictions.npy"))
    test_scores = np.load(out / "predictions.npy")
    np.testing.assert_array_equal(test_scores, np.load(out / "test_predictions.npy"))
    np.testing.assert_array_equal(np.load(out / "decisions.npy"), test_scores > thresholds)
    assert results == official_metrics(test_gt, test_scores, test_scores > thresholds)


def test_saved_model_signature_scores_like_the_keras_model(tiny_setup):
    import tensorflow as tf

    root, model = tiny_setup["root"], tiny_setup["model"]

    class Serving(tf.Module):  # the export contract: mel [batch, bands, time] -> {"scores", ...}
        def __init__(self):
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, BANDS, None], tf.float32, name="mel")])
        def serve(self, mel):
            return {"scores": self.model(mel[..., None], training=False)}

    serving = Serving()
    tf.saved_model.save(serving, str(root / "saved_models" / "tiny" / "3"),
                        signatures={"serving_default": serving.serve})
    for name, path in (("keras2", root / "m.keras"), ("sm", root / "saved_models" / "tiny")):
        evaluate.main(["--model", str(path), *tiny_setup["args"], "--out", str(root / name)])
    for name in ("val_predictions", "test_predictions"):
        np.testing.assert_allclose(np.load(root / "sm" / f"{name}.npy"), np.load(root / "keras2" / f"{name}.npy"),
                                   atol=1e-6)
