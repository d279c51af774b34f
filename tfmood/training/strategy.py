"""Pick the `tf.distribute` strategy from the hardware and the environment."""

import json
import os

import tensorflow as tf


def cluster_workers() -> int:
    """Number of workers that `TF_CONFIG` describes (0 when unset)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return len(config.get("cluster", {}).get("worker", []))


def get_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirrored when TF_CONFIG lists several hosts, Mirrored on several GPUs, else the default.

    Models and optimizers must be created inside `strategy.scope()`; the batch size given to the input
    pipeline is the *global* batch, split across replicas by the strategy.
    """
    if cluster_workers() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief writes checkpoints, summaries and exports in a multi-worker run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)
