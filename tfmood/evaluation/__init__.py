"""Official MTG-Jamendo evaluation: metrics, thresholds, submission files, reports and ensembles.

Pure numpy / scikit-learn: nothing here imports TensorFlow except `scoring` (model loading), which
does so lazily, so evaluating saved predictions stays fast.
"""

from tfmood.evaluation.ensemble import average_snapshots, tune_weights
from tfmood.evaluation.metrics import METRIC_KEYS, RANKING_METRIC, format_metrics, official_metrics
from tfmood.evaluation.report import per_tag_table, write_report
from tfmood.evaluation.run import evaluate_run, load_part, save_part
from tfmood.evaluation.submission import write_submission
from tfmood.evaluation.thresholds import decide, fit_thresholds, load_thresholds, save_thresholds

__all__ = [
    "METRIC_KEYS", "RANKING_METRIC", "average_snapshots", "decide", "evaluate_run", "fit_thresholds",
    "format_metrics", "load_part", "load_thresholds", "official_metrics", "per_tag_table", "save_part",
    "save_thresholds", "tune_weights", "write_report", "write_submission",
]
