"""Averaging score matrices: checkpoint snapshots, and weighted ensembles tuned on validation.

Weights live on the simplex (non-negative, summing to 1) and are tuned to maximise validation
PR-AUC-macro. That objective is piecewise constant in the weights (it only depends on score ranks),
so gradient methods see zero gradients; the search is a lattice over the simplex (exact enough for 2
models at step 0.01) refined, for 3+ models, by scipy's derivative-free Nelder-Mead. The lattice
contains every single model, so the tuned ensemble is never worse on validation than its best member.
"""

import itertools

import numpy as np

from tfmood.evaluation.metrics import pr_auc_macro


def check_weights(weights, count: int) -> np.ndarray:
    """Validate `weights` (one per member, >= 0, not all 0) and normalise them to sum to 1."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (count,):
        raise ValueError(f"expected {count} weight(s), one per member. Received: {w.tolist()}")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be finite, >= 0 and not all 0. Received: {w.tolist()}")
    return w / w.sum()


def average_snapshots(score_matrices, weights=None) -> np.ndarray:
    """Weighted mean of equally shaped score matrices (uniform when `weights` is None), float64."""
    mats = [np.asarray(m, dtype=np.float64) for m in score_matrices]
    if not mats:
        raise ValueError("average_snapshots needs at least one score matrix. Received: an empty list")
    shapes = {m.shape for m in mats}
    if len(shapes) != 1:
        raise ValueError(f"score matrices must all have the same shape. Received: {[m.shape for m in mats]}")
    w = check_weights(np.ones(len(mats)) if weights is None else weights, len(mats))
    return np.tensordot(w, np.stack(mats), axes=1)


def simplex_lattice(count: int, steps: int) -> np.ndarray:
    """All weight vectors with entries in {0, 1/steps, ..., 1} summing to 1 (vertices included)."""
    points = [c for c in itertools.product(range(steps + 1), repeat=count - 1) if sum(c) <= steps]
    return np.array([(*c, steps - sum(c)) for c in points], dtype=np.float64) / steps


def lattice_steps(count: int, budget: int = 200) -> int:
    """The finest lattice with at most `budget` points (100 steps for 2 models)."""
    steps = 100 if count == 2 else 1
    while count > 2 and len(simplex_lattice(count, steps + 1)) <= budget:
        steps += 1
    return steps


def tune_weights(val_predictions, val_groundtruth, max_evals: int = 200) -> tuple:
    """Simplex weights maximising validation PR-AUC-macro of the weighted average.

    Returns `(weights, val_pr_auc)`. 1 model: weight 1. 2 models: a 0.01 grid. 3+: the finest lattice
    with <= `max_evals` points, then Nelder-Mead from the best point on `w = |z| / sum|z|` (a
    parametrisation that can reach 0 weights).
    """
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in val_predictions])
    score = lambda w: pr_auc_macro(val_groundtruth, np.tensordot(w, stack, axes=1))  # noqa: E731
    count = len(stack)
    if count == 1:
        return np.ones(1), score(np.ones(1))
    grid = simplex_lattice(count, lattice_steps(count, max_evals))
    values = np.array([score(w) for w in grid])
    best_w, best = grid[int(np.argmax(values))], float(values.max())
    if count > 2:
        from scipy import optimize  # ~1 s to import: only when a 3+ model search needs it

        to_simplex = lambda z: np.abs(z) / max(np.abs(z).sum(), 1e-12)  # noqa: E731
        # scipy's default initial simplex moves zero weights by only 2.5e-4; start 0.1 wide instead,
        # wide enough to cross rank changes of the piecewise-constant objective.
        start = best_w + 0.1 * np.vstack([np.zeros(count), np.eye(count)])
        found = optimize.minimize(lambda z: -score(to_simplex(z)), best_w, method="Nelder-Mead",
                                  options={"maxfev": max_evals, "xatol": 1e-3, "fatol": 1e-6,
                                           "initial_simplex": start})
        if -found.fun > best:
            best_w, best = to_simplex(found.x), float(-found.fun)
    return best_w, best
