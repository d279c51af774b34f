"""Averaging score matrices, and choosing ensemble weights on validation without fooling ourselves.

Weights live on the simplex (non-negative, summing to 1). Three ways to choose them (`METHODS`):

- `mean`: uniform weights. Nothing is fitted, so nothing overfits.
- `greedy`: Caruana et al.'s ensemble selection (2004), forward selection *with replacement*: start from
  the best member, repeatedly add the member (again, if it helps) whose addition most raises validation
  PR-AUC-macro; weights are the selection counts. Adding one member at a time keeps the weights coarse
  (multiples of 1/steps), which is what makes it robust. The library is first pruned to the best
  `library` members by their own validation score (Caruana et al. 2006 found pruning helps; it also
  bounds the cost for large libraries).
- `simplex`: a lattice over the simplex refined by Nelder-Mead, maximising validation PR-AUC-macro
  directly. Exact for 2 members; with many members it overfits the validation tracks (measured on 12
  published models: better than the mean on validation, worse on test).

In-sample validation scores flatter every fitted method. `cross_validate` estimates the out-of-sample
score: fit on k-1 folds of the validation tracks, score the held-out fold, pool the held-out
predictions. `select` (the CLI's default, `auto`) picks the method with the best such estimate and fits
it on all of validation. The objective (PR-AUC-macro) only depends on score ranks, so it is piecewise
constant in the weights: no gradients, hence these derivative-free searches.
"""

import math

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


def lattice_size(count: int, steps: int) -> int:
    """Number of points of `simplex_lattice(count, steps)` (stars and bars), without building it."""
    return math.comb(steps + count - 1, count - 1)


def simplex_lattice(count: int, steps: int) -> np.ndarray:
    """All weight vectors with entries in {0, 1/steps, ..., 1} summing to 1 (vertices included).

    Built from the compositions of `steps` into `count` parts, so its cost is the number of points,
    not the (steps+1)^count candidates of a filtered product (which never finishes for 24 members).
    """
    points = [[steps]]
    for _ in range(count - 1):  # split the last part of each composition in every possible way
        points = [p[:-1] + [k, p[-1] - k] for p in points for k in range(p[-1] + 1)]
    return np.array(points, dtype=np.float64)[:, ::-1] / steps


def lattice_steps(count: int, budget: int = 200) -> int:
    """The finest lattice with at most `budget` points (100 steps for 2 models, vertices at least)."""
    if count == 2:
        return 100
    steps = 1
    while lattice_size(count, steps + 1) <= budget:
        steps += 1
    return steps


def _stack(predictions) -> np.ndarray:
    """Members as one [members, tracks, tags] float32 array: the searches evaluate thousands of weighted
    averages, and float32 halves the memory each one streams through (the objective is rank-based, so
    float32's precision is ample; reported scores are recomputed in float64 by `average_snapshots`)."""
    return np.stack([np.asarray(p, dtype=np.float32) for p in predictions])


def _mix(weights, stack) -> np.ndarray:
    """The weighted average in the stack's dtype (float64 weights would upcast a copy of the whole stack)."""
    return np.tensordot(np.asarray(weights, stack.dtype), stack, axes=1)


def fit_mean(stack, groundtruth, max_evals=200) -> np.ndarray:
    return np.full(len(stack), 1.0 / len(stack))


def fit_simplex(stack, groundtruth, max_evals: int = 200) -> np.ndarray:
    """Weights maximising validation PR-AUC-macro over the simplex: 1 model: weight 1; 2 models: a 0.01
    grid; 3+: the finest lattice with <= `max_evals` points, then Nelder-Mead for the rest of the
    `max_evals` budget (at least 2 per member) from the best point on `w = |z| / sum|z|` (a
    parametrisation that reaches 0 weights)."""
    count = len(stack)
    if count == 1:
        return np.ones(1)
    score = lambda w: pr_auc_macro(groundtruth, _mix(w, stack))  # noqa: E731
    grid = simplex_lattice(count, lattice_steps(count, max_evals))
    values = np.array([score(w) for w in grid])
    best_w, best = grid[int(np.argmax(values))], float(values.max())
    remaining = max_evals if count == 2 else max(max_evals - len(grid), 2 * count)
    if count > 2:
        from scipy import optimize  # ~1 s to import: only when a 3+ model search needs it

        to_simplex = lambda z: np.abs(z) / max(np.abs(z).sum(), 1e-12)  # noqa: E731
        # scipy's default initial simplex moves zero weights by only 2.5e-4; start 0.1 wide instead,
        # wide enough to cross rank changes of the piecewise-constant objective.
        start = best_w + 0.1 * np.vstack([np.zeros(count), np.eye(count)])
        found = optimize.minimize(lambda z: -score(to_simplex(z)), best_w, method="Nelder-Mead",
                                  options={"maxfev": remaining, "xatol": 1e-3, "fatol": 1e-6,
                                           "initial_simplex": start})
        if -found.fun > best:
            best_w = to_simplex(found.x)
    return best_w


def fit_greedy(stack, groundtruth, max_evals: int = 200, library: int = 16, max_steps: int = 25,
               patience: int = 5) -> np.ndarray:
    """Caruana's forward selection with replacement over the best `library` members (see module doc).

    Stops after `max_steps` additions, after `patience` additions without a new best, or when the next
    step would exceed `max_evals` evaluations; returns the counts of the best prefix, normalised.
    """
    count = len(stack)
    own = np.array([pr_auc_macro(groundtruth, m) for m in stack])
    pool = np.argsort(-own, kind="stable")[:library]
    counts = np.zeros(count)
    counts[pool[0]] = 1
    total, best, best_counts = stack[pool[0]].copy(), own[pool[0]], counts.copy()
    evals, stale = count, 0
    for step in range(2, max_steps + 1):
        if evals + len(pool) > max(max_evals, count + len(pool)):
            break
        trial = [pr_auc_macro(groundtruth, (total + stack[k]) / step) for k in pool]
        evals += len(pool)
        pick = pool[int(np.argmax(trial))]
        counts[pick] += 1
        total += stack[pick]
        if max(trial) > best:
            best, best_counts, stale = max(trial), counts.copy(), 0
        else:
            stale += 1
            if stale >= patience:
                break
    return best_counts / best_counts.sum()


METHODS = {"mean": fit_mean, "greedy": fit_greedy, "simplex": fit_simplex}
AUTO_CANDIDATES = ("mean", "greedy", "simplex")


def get_method(name: str):
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown ensemble method {name!r}. Choose one of: auto, {', '.join(METHODS)}") from None


def fold_indices(n: int, folds: int, seed: int = 0) -> list:
    """`folds` disjoint index arrays covering range(n), from a seeded permutation (deterministic)."""
    if folds < 2 or folds > n:
        raise ValueError(f"cross-validation needs 2 <= folds <= tracks ({n}). Received: folds={folds}")
    return np.array_split(np.random.default_rng(seed).permutation(n), folds)


def cross_validate(method: str, stack, groundtruth, folds: int = 5, seed: int = 0, max_evals: int = 200,
                   per_fold: bool = False):
    """Out-of-sample PR-AUC-macro of `method`: fit on k-1 validation folds, score the held-out fold with
    those weights, pool all held-out predictions and score them once (small folds alone are too noisy).
    With `per_fold`, returns `(pooled, [k] per-fold scores)`: paired across methods (same folds), they
    give the standard error that `select` uses."""
    stack, gt = _stack(stack), np.asarray(groundtruth, bool)
    held_out = np.empty(stack.shape[1:])
    scores = []
    for test in fold_indices(len(gt), folds, seed):
        train = np.setdiff1d(np.arange(len(gt)), test)
        w = get_method(method)(stack[:, train], gt[train], max_evals=max_evals)
        held_out[test] = _mix(w, stack[:, test])
        scores.append(pr_auc_macro(gt[test], held_out[test]))
    pooled = pr_auc_macro(gt, held_out)
    return (pooled, np.array(scores)) if per_fold else pooled


def one_standard_error_choice(names, pooled: dict, folds: dict) -> str:
    """The first (simplest) of `names` whose estimate is within one standard error of the best one's.

    The standard error is that of the paired per-fold difference to the best method: an apparent gain
    smaller than the fold-to-fold noise is not worth the extra fitting (Breiman et al.'s one-SE rule).
    """
    best = max(names, key=lambda n: pooled[n])
    for name in names:
        diff = folds[best] - folds[name]
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
        if pooled[name] >= pooled[best] - se:
            return name
    return best


def select(val_predictions, val_groundtruth, method: str = "auto", folds: int = 5, seed: int = 0,
           max_evals: int = 200) -> dict:
    """Choose ensemble weights on validation.

    Returns `{"method", "weights", "estimates": {name: {"in_sample", "cross_validated"}}}`. With
    `method="auto"` every candidate is cross-validated and the simplest one (in `AUTO_CANDIDATES` order)
    within one standard error of the best estimate wins; a named method is fitted directly and
    cross-validated only to report its estimate (`folds=0` skips that).
    """
    stack, gt = _stack(val_predictions), np.asarray(val_groundtruth, bool)
    names = AUTO_CANDIDATES if method == "auto" else (method,)
    for name in names:
        get_method(name)
    if len(stack) == 1:
        names = ("mean",)
    estimates, per_fold = {}, {}
    for name in names:
        pooled = None
        if folds:
            pooled, per_fold[name] = cross_validate(name, stack, gt, folds, seed, max_evals, per_fold=True)
        estimates[name] = {"cross_validated": pooled}
    chosen = names[0] if len(names) == 1 else one_standard_error_choice(
        names, {n: e["cross_validated"] for n, e in estimates.items()}, per_fold)
    weights = get_method(chosen)(stack, gt, max_evals=max_evals)
    for name in names:  # in-sample scores: only the chosen method is refitted on all of validation
        w = weights if name == chosen else get_method(name)(stack, gt, max_evals=max_evals)
        estimates[name]["in_sample"] = pr_auc_macro(gt, _mix(w, stack))
    return {"method": chosen, "weights": weights, "estimates": estimates}


def tune_weights(val_predictions, val_groundtruth, max_evals: int = 200, method: str = "simplex") -> tuple:
    """`(weights, validation PR-AUC-macro)` of one method fitted on all of validation (no estimate)."""
    stack = _stack(val_predictions)
    w = get_method(method)(stack, np.asarray(val_groundtruth, bool), max_evals=max_evals)
    return w, pr_auc_macro(val_groundtruth, _mix(w, stack))
