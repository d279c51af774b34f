"""Ensemble weight tuning on the simplex and the `python -m tfmood.ensemble` CLI."""

import json

import numpy as np
import pytest

from tfmood import ensemble
from tfmood.evaluation import average_snapshots, fit_thresholds, official_metrics, save_part, tune_weights
from tfmood.evaluation.ensemble import (check_weights, cross_validate, fit_greedy, lattice_size, lattice_steps,
                                        select, simplex_lattice)
from tfmood.evaluation.metrics import pr_auc_macro
from tfmood.evaluation.run import collect_part
from tfmood.tags import NUM_TAGS


def labels(n, seed):
    rng = np.random.default_rng(seed)
    gt = rng.random((n, NUM_TAGS)) < 0.08
    gt[np.arange(n), np.arange(n) % NUM_TAGS] = True  # every tag present
    return gt


def member(gt, signal, seed):
    """Scores informative with strength `signal` (0 = pure noise)."""
    rng = np.random.default_rng(seed)
    return 1 / (1 + np.exp(-(signal * gt + rng.normal(0, 1, gt.shape))))


def test_simplex_lattice_equals_the_filtered_product_and_scales_to_many_members():
    import itertools
    for count, steps in [(2, 3), (3, 4), (4, 3), (5, 2)]:
        brute = {tuple(c) + (steps - sum(c),) for c in itertools.product(range(steps + 1), repeat=count - 1)
                 if sum(c) <= steps}
        grid = simplex_lattice(count, steps)
        assert {tuple(np.rint(w * steps).astype(int)) for w in grid} == brute
        assert len(grid) == len(brute) == lattice_size(count, steps)
    # 24 and 50 members: the old filtered product enumerated 3^(count-1) tuples and never finished
    assert lattice_steps(50) == 1 and np.array_equal(simplex_lattice(50, 1), np.eye(50))
    assert lattice_steps(24) == 1 and lattice_steps(5) == 5  # C(9, 4) = 126 <= 200 < C(10, 4)


def test_simplex_lattice_covers_the_vertices():
    grid = simplex_lattice(3, 4)
    assert len(grid) == 15 and np.allclose(grid.sum(axis=1), 1) and (grid >= 0).all()
    for vertex in np.eye(3):
        assert any(np.array_equal(vertex, w) for w in grid)


@pytest.mark.parametrize("count", [2, 3])
def test_tuned_weights_favour_the_informative_model(count):
    gt = labels(112, seed=0)
    preds = [member(gt, 2.0, seed=1)] + [member(gt, 0.0, seed=10 + i) for i in range(count - 1)]
    weights, val_score = tune_weights(preds, gt, max_evals=60)
    assert weights.shape == (count,) and (weights >= 0).all() and weights.sum() == pytest.approx(1)
    assert weights[0] > 0.7, weights
    assert val_score == pytest.approx(pr_auc_macro(gt, average_snapshots(preds, weights)))
    assert all(val_score >= pr_auc_macro(gt, p) for p in preds)


def test_tuned_ensemble_of_two_informative_models_beats_both():
    gt = labels(112, seed=2)
    preds = [member(gt, 1.2, seed=3), member(gt, 1.2, seed=4)]  # independent errors: averaging helps
    weights, val_score = tune_weights(preds, gt)
    assert 0.2 < weights[0] < 0.8
    assert val_score > max(pr_auc_macro(gt, p) for p in preds)


def test_check_weights_normalises_and_names_bad_values():
    np.testing.assert_allclose(check_weights([7, 3], 2), [0.7, 0.3])
    with pytest.raises(ValueError, match=r"expected 2 weight\(s\).*\[1.0\]"):
        check_weights([1], 2)
    with pytest.raises(ValueError, match=r"not all 0. Received: \[0.0, 0.0\]"):
        check_weights([0, 0], 2)


def make_run(folder, val_gt, test_gt, signal, seed, shuffle=False):
    """A run folder as `python -m tfmood.evaluate` leaves it (optionally with its rows in another order)."""
    val, test = member(val_gt, signal, seed), member(test_gt, signal, seed + 100)
    val_ids, test_ids = np.arange(len(val_gt)) + 1, np.arange(len(test_gt)) + 1001
    order = np.random.default_rng(seed).permutation(len(test_gt)) if shuffle else np.arange(len(test_gt))
    save_part(str(folder), "val", val, val_gt, val_ids)
    save_part(str(folder), "test", test[order], test_gt[order], test_ids[order])
    return str(folder), val, test


def test_collect_part_aligns_runs_by_track_id(tmp_path):
    val_gt, test_gt = labels(112, 5), labels(112, 6)
    a, _, test_a = make_run(tmp_path / "a", val_gt, test_gt, 1.0, seed=7)
    b, _, test_b = make_run(tmp_path / "b", val_gt, test_gt, 1.0, seed=8, shuffle=True)
    preds, gt, ids = collect_part([a, b], "test")
    np.testing.assert_array_equal(gt, test_gt)
    np.testing.assert_array_equal(preds[1], test_b)  # back in run a's (the labels') order
    np.testing.assert_array_equal(ids, np.arange(112) + 1001)


def test_ensemble_cli_tunes_weights_and_writes_everything(tmp_path):
    val_gt, test_gt = labels(112, 11), labels(112, 12)
    good, val_good, test_good = make_run(tmp_path / "good", val_gt, test_gt, 2.0, seed=13)
    noise, val_noise, test_noise = make_run(tmp_path / "noise", val_gt, test_gt, 0.0, seed=14, shuffle=True)
    out = tmp_path / "ens"
    summary = ensemble.main(["--run", good, "--run", noise, "--out", str(out), "--no-figure"])
    weights = np.array(summary["weights"])
    assert weights[0] > 0.7 and weights.sum() == pytest.approx(1)
    saved = json.loads((out / "ensemble.json").read_text())
    assert saved["weights"] == summary["weights"] and saved["method"] in ("greedy", "simplex", "mean")
    est = saved["estimates"]
    assert set(est) == {"mean", "greedy", "simplex"}
    # the informative member dominates: a fitted method must beat the uniform mean out of sample
    assert saved["method"] != "mean" and est["mean"]["cross_validated"] < est[saved["method"]]["cross_validated"]
    val = weights[0] * val_good + weights[1] * val_noise
    assert saved["validation"]["PR-AUC-macro"] == pytest.approx(pr_auc_macro(val_gt, val))
    assert all(saved["validation"]["PR-AUC-macro"] >= m["PR-AUC-macro"] for m in saved["members"]["validation"])
    test = weights[0] * test_good + weights[1] * test_noise
    np.testing.assert_allclose(np.load(out / "predictions.npy"), test)
    thresholds = fit_thresholds(val_gt, val)
    np.testing.assert_array_equal(np.load(out / "decisions.npy"), test > thresholds)
    assert saved["test"] == official_metrics(test_gt, test, test > thresholds)
    for name in ("thresholds.tsv", "metrics.json", "per_tag.tsv", "val_predictions.npy", "test_track_ids.npy"):
        assert (out / name).exists(), name


def test_ensemble_cli_fixed_weights_skip_tuning(tmp_path):
    val_gt, test_gt = labels(112, 21), labels(112, 22)
    a, _, test_a = make_run(tmp_path / "a", val_gt, test_gt, 1.0, seed=23)
    b, _, test_b = make_run(tmp_path / "b", val_gt, test_gt, 0.5, seed=24)
    summary = ensemble.main(["--run", a, "--run", b, "--weights", "0.7", "0.3", "--out", str(tmp_path / "o"),
                             "--no-figure"])
    assert summary["weights"] == pytest.approx([0.7, 0.3]) and summary["weights_source"] == "given"
    np.testing.assert_allclose(np.load(tmp_path / "o" / "test_predictions.npy"), 0.7 * test_a + 0.3 * test_b)


def test_ensemble_cli_errors_are_clear(tmp_path, capsys):
    val_gt, test_gt = labels(112, 31), labels(112, 32)
    a, _, _ = make_run(tmp_path / "a", val_gt, test_gt, 1.0, seed=33)
    with pytest.raises(SystemExit):
        ensemble.main(["--run", a, "--weights", "0.5", "0.5", "--out", str(tmp_path / "o")])
    assert "expected 1 weight(s)" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        ensemble.main(["--run", a, "--run", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])


def correlated_members(gt, count, seed, signal=1.0, shared=0.6):
    """`count` equally good members whose errors are partly shared (as models trained on the same data)."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 1, gt.shape)
    return [1 / (1 + np.exp(-(signal * gt + shared * common + rng.normal(0, 1, gt.shape))))
            for _ in range(count)]


def test_greedy_selection_repeats_members_and_ignores_noise():
    gt = labels(200, seed=40)
    preds = [member(gt, 1.5, seed=41), member(gt, 1.0, seed=42)] + [member(gt, 0.0, seed=50 + i) for i in range(6)]
    w = fit_greedy(np.stack(preds), gt)
    assert w[2:].sum() < 0.2, w  # pure-noise members get (almost) nothing
    assert w[0] > w[1] > 0 and w[0] > 0.4, w
    # weights are selection counts / number of selections (at most max_steps = 25)
    assert any(np.allclose(w * n, np.rint(w * n), atol=1e-9) for n in range(2, 26)), w


def test_cross_validation_sees_the_simplex_overfit_and_auto_avoids_it():
    """12 equally good, correlated members, 150 validation tracks: the direct simplex search fits the
    validation noise. Its cross-validated estimate must be well below its in-sample score and closer to
    the score on 3,000 unseen tracks; `auto` must not pick a method that does worse on those tracks
    than the plain mean by more than noise."""
    gaps, closer = [], []
    for seed in range(3):
        val_gt, test_gt = labels(150, seed=60 + seed), labels(3000, seed=70 + seed)
        rng_seed = 80 + seed
        val = correlated_members(val_gt, 12, rng_seed)
        test = correlated_members(test_gt, 12, rng_seed + 1000)
        choice = select(val, val_gt, "auto", folds=5, max_evals=120)
        est = choice["estimates"]["simplex"]
        w_simplex = tune_weights(val, val_gt, max_evals=120)[0]
        true = pr_auc_macro(test_gt, average_snapshots(test, w_simplex))
        gaps.append(est["in_sample"] - est["cross_validated"])
        closer.append(abs(est["cross_validated"] - true) < abs(est["in_sample"] - true))
        chosen = pr_auc_macro(test_gt, average_snapshots(test, choice["weights"]))
        mean = pr_auc_macro(test_gt, average_snapshots(test))
        assert chosen >= mean - 0.003, (choice["method"], chosen, mean)
        assert choice["estimates"]["mean"]["cross_validated"] == pytest.approx(
            choice["estimates"]["mean"]["in_sample"])  # nothing fitted: the estimate equals the score
    assert min(gaps) > 0.005, gaps
    assert all(closer), closer


def test_cross_validate_is_deterministic_and_checks_folds():
    gt = labels(60, seed=90)
    preds = correlated_members(gt, 3, seed=91)
    assert cross_validate("greedy", preds, gt, folds=4, seed=3) == cross_validate("greedy", preds, gt, folds=4, seed=3)
    with pytest.raises(ValueError, match="2 <= folds <= tracks"):
        cross_validate("mean", preds, gt, folds=1)
    with pytest.raises(ValueError, match="unknown ensemble method 'best'"):
        select(preds, gt, "best")


def test_ensemble_cli_method_and_fold_errors(tmp_path, capsys):
    val_gt, test_gt = labels(112, 41), labels(112, 42)
    a, _, _ = make_run(tmp_path / "a", val_gt, test_gt, 1.0, seed=43)
    b, _, _ = make_run(tmp_path / "b", val_gt, test_gt, 1.0, seed=44)
    with pytest.raises(SystemExit):
        ensemble.main(["--run", a, "--run", b, "--folds", "0", "--out", str(tmp_path / "o")])
    assert "--method auto chooses by cross-validation" in capsys.readouterr().err
    summary = ensemble.main(["--run", a, "--run", b, "--method", "mean", "--out", str(tmp_path / "m"),
                             "--no-figure"])
    assert summary["weights"] == [0.5, 0.5] and summary["method"] == "mean"
    assert "mean" in capsys.readouterr().out
