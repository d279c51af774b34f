"""Evaluation report: per-tag table (TSV + markdown), a PNG figure and `metrics.json`.

The figure is drawn with matplotlib's Agg canvas directly (no `pyplot`, no global backend switch), so
it works headless and doesn't disturb a caller's own matplotlib state.
"""

import io
import os

import numpy as np
from sklearn import metrics as skm

from tfmood.evaluation.files import atomic_open, save_json, save_text
from tfmood.evaluation.metrics import RANKING_METRIC, check_matrices, format_metrics
from tfmood.tags import TAGS

COLUMNS = ("tag", "positives", "PR-AUC", "ROC-AUC", "threshold", "precision", "recall", "F-score")
FILES = {"tsv": "per_tag.tsv", "markdown": "report.md", "figure": "report.png",
         "json": "metrics.json", "results": "results.tsv"}


def per_tag_table(groundtruth, predictions, thresholds) -> list:
    """One dict per tag (canonical order) with the `COLUMNS` values; decisions are `pred > threshold`.

    Without thresholds (`None`), the threshold, precision, recall and F columns are NaN.
    """
    gt = check_matrices(groundtruth, predictions=predictions)
    pr_auc = skm.average_precision_score(gt, predictions, average=None)
    roc_auc = skm.roc_auc_score(gt, predictions, average=None)
    if thresholds is None:
        thresholds = precision = recall = f_score = np.full(gt.shape[1], np.nan)
    else:
        thresholds = np.asarray(thresholds, dtype=np.float64)
        precision, recall, f_score, _ = skm.precision_recall_fscore_support(
            gt, np.asarray(predictions) > thresholds, average=None, zero_division=0)
    return [dict(zip(COLUMNS, (tag, int(gt[:, i].sum()), float(pr_auc[i]), float(roc_auc[i]),
                               float(thresholds[i]), float(precision[i]), float(recall[i]), float(f_score[i]))))
            for i, tag in enumerate(TAGS)]


def table_tsv(rows: list) -> str:
    # repr keeps full precision: the TSV is for machines (its PR-AUC mean is exactly PR-AUC-macro).
    lines = ["\t".join(COLUMNS)]
    lines += ["\t".join(str(r[c]) if isinstance(r[c], (str, int)) else repr(r[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


def table_markdown(rows: list, results: dict, title: str) -> str:
    out = [f"# {title}", "", "| metric | value |", "|---|---|"]
    out += [f"| {k} | {v:.6f} |" for k, v in results.items()]
    out += ["", "Per tag, sorted by PR-AUC (decisions: score > threshold).", "",
            "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in sorted(rows, key=lambda r: -r["PR-AUC"]):
        out.append(f"| {r['tag']} | {r['positives']} | " + " | ".join(
            f"{r[c]:.4f}" for c in COLUMNS[2:]) + " |")
    return "\n".join(out) + "\n"


def draw_figure(groundtruth, predictions, rows: list, title: str) -> bytes:
    """PNG bytes: sorted per-tag PR-AUC bars (chance = positive rate), PR curves of the best and worst 3 tags."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    gt, predictions = np.asarray(groundtruth, bool), np.asarray(predictions)
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["PR-AUC"])
    fig = Figure(figsize=(14, 10), layout="constrained")
    FigureCanvasAgg(fig)
    bars, curves = fig.subplots(2, 1, height_ratios=(3, 2))
    x = np.arange(len(order))
    bars.bar(x, [rows[i]["PR-AUC"] for i in order], color="tab:blue", label="PR-AUC (average precision)")
    bars.scatter(x, gt.mean(axis=0)[order], color="tab:red", s=10, zorder=3, label="chance (positive rate)")
    bars.axhline(np.mean([r["PR-AUC"] for r in rows]), color="k", lw=1, ls="--", label=RANKING_METRIC)
    bars.set_xticks(x, [rows[i]["tag"] for i in order], rotation=90, fontsize=8)
    bars.set_xlim(-0.7, len(order) - 0.3)
    bars.set_ylabel("PR-AUC")
    bars.set_title(title)
    bars.legend(loc="upper right")
    for rank, i in enumerate(order[:3] + order[-3:]):
        precision, recall, _ = skm.precision_recall_curve(gt[:, i], predictions[:, i])
        curves.plot(recall, precision, ls="-" if rank < 3 else "--",
                    label=f"{rows[i]['tag']} (PR-AUC {rows[i]['PR-AUC']:.3f})")
    curves.set_xlabel("recall")
    curves.set_ylabel("precision")
    curves.set_title("precision-recall curves: best 3 (solid) and worst 3 (dashed) tags")
    curves.legend(loc="upper right", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def write_report(out_dir: str, groundtruth, predictions, thresholds, results: dict,
                 title: str = "tfmood evaluation", extra: dict = None, figure: bool = True) -> dict:
    """Write `per_tag.tsv`, `report.md`, `report.png` (unless `figure=False`: it takes ~1 s), `results.tsv`
    (MTG layout) and `metrics.json`.

    `metrics.json` holds `results` (official keys), the per-tag rows and `extra` (e.g. provenance).
    Returns the paths written.
    """
    rows = per_tag_table(groundtruth, predictions, thresholds)
    paths = {k: os.path.join(out_dir, v) for k, v in FILES.items() if figure or k != "figure"}
    save_text(paths["tsv"], table_tsv(rows))
    save_text(paths["markdown"], table_markdown(rows, results, title))
    save_text(paths["results"], format_metrics(results))
    if figure:
        with atomic_open(paths["figure"], "wb") as f:
            f.write(draw_figure(groundtruth, predictions, rows, title))
    save_json(paths["json"], {"metrics": results, **(extra or {}), "per_tag": rows})
    return paths
