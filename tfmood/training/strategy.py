"""Pick the `tf.distribute` strategy from the hardware and the environment."""

import contextlib
import json
import os
import socket
import time

import tensorflow as tf

from tfmood.data import deferred


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
        return multi_worker_strategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


# Bounds on waiting for peers (docs/training.md, "Several hosts"); the environment variables override them.
# TensorFlow's own defaults wait forever for a worker that never starts, and its SIGTERM handler (for
# preemption) keeps the process alive.
CLUSTER_START_TIMEOUT_S = int(os.environ.get("TFMOOD_CLUSTER_START_TIMEOUT_S", 600))  # all workers joined
HEARTBEAT_TIMEOUT_S = int(os.environ.get("TFMOOD_HEARTBEAT_TIMEOUT_S", 30))  # silent this long: gone
SHUTDOWN_TIMEOUT_S = int(os.environ.get("TFMOOD_SHUTDOWN_TIMEOUT_S", 30))  # at exit, wait for the others


class PeerLost(SystemExit):
    """A worker of a multi-worker run stopped or became unreachable: this one stops too (exit status 1).

    A SystemExit: the process ends with the message and without a traceback (nothing is left to do here:
    re-run every worker's command to resume from the backups).
    """


def multi_worker_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy with bounded waits for peers, and SIGTERM/SIGINT that stop the process.

    A worker that has not started within CLUSTER_START_TIMEOUT_S ends the waiting ones (`rendezvous`, then
    `watchdog.deadline` around TF's own start-up, which ignores its registration timeout). The coordination service (hosted by the chief,
    heart-beaten by every worker) is configured before the strategy starts it: a worker that stops
    heart-beating is declared gone after HEARTBEAT_TIMEOUT_S, which aborts every pending and later
    collective on the others (`cluster_guard` turns that into a `PeerLost` error).
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context  # the only place these timeouts can be set

    from tfmood.training import watchdog

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    spec = resolver.cluster_spec()
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker") if job in spec.jobs]
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=jobs, cluster_register_timeout_in_ms=CLUSTER_START_TIMEOUT_S * 1000,
        heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000, shutdown_barrier_timeout_in_ms=SHUTDOWN_TIMEOUT_S * 1000)
    print(f"Waiting for the {sum(j.num_tasks for j in jobs)} workers of TF_CONFIG to start (at most "
          f"{CLUSTER_START_TIMEOUT_S} s) ...", flush=True)
    watchdog.stop_on_signals()
    started = time.monotonic()
    rendezvous(spec.as_dict(), resolver.task_type, resolver.task_id, CLUSTER_START_TIMEOUT_S)
    # TF's own wait: short now that every peer is up; the watchdog covers a peer that dies meanwhile.
    left = max(CLUSTER_START_TIMEOUT_S - (time.monotonic() - started), HEARTBEAT_TIMEOUT_S)
    with watchdog.deadline(left, f"the other workers of {spec.as_dict()} did not all join the cluster in time"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    watchdog.stop_on_signals()  # again: TF installs its own SIGTERM handler (which only records the signal)
    return strategy


def rendezvous(cluster: dict, task_type: str, task_id: int, timeout_s: float) -> None:
    """Return once every other task's address accepts TCP connections; `SystemExit` after `timeout_s`.

    TensorFlow's start-up wait blocks the whole interpreter (signals included) and ignores its registration
    timeout, so the waiting happens here first, in Python: this task listens on its own address (never
    accepting: the kernel completes the peers' connections) while it polls the others'. A peer counts as up
    once its address answers, whether its listener or, later, its TensorFlow server does.
    """
    me = cluster[task_type][task_id]
    peers = [address for job in cluster.values() for address in job if address != me]
    listener = socket.socket(socket.AF_INET6 if ":" in me.rsplit(":", 1)[0] else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", int(me.rsplit(":", 1)[1])))
    except OSError as e:
        raise SystemExit(f"error: worker {task_type}-{task_id}: cannot listen on {me} (its TF_CONFIG address): "
                         f"{e.strerror}. Is another process using that port?") from None
    listener.listen(64)
    deadline = time.monotonic() + timeout_s
    try:
        while peers:
            peers = [address for address in peers if not _answers(address)]
            if peers and time.monotonic() > deadline:
                raise SystemExit(f"error: worker {task_type}-{task_id}: the other workers {peers} did not start "
                                 f"within {timeout_s:.0f} s (TFMOOD_CLUSTER_START_TIMEOUT_S); stopping.")
            time.sleep(0.5)
        time.sleep(2.0)  # let the slowest peer see this task's listener too before TF's server replaces it
    finally:
        listener.close()


def _answers(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def cluster_guard(strategy: tf.distribute.Strategy):
    """Turn the collective errors of a multi-worker run whose peer is gone into one clear `PeerLost`."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.InternalError) as e:
        resolver = strategy.cluster_resolver
        raise PeerLost(f"error: worker {resolver.task_type}-{resolver.task_id}: lost contact with another worker of "
                       f"the run (it stopped, or is unreachable: {type(e).__name__} in a collective); stopping. "
                       "Re-run every worker's command to resume from the last completed epoch.") from None


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief writes checkpoints, summaries and exports in a multi-worker run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def worker_dir(strategy: tf.distribute.Strategy, run_dir: str) -> str:
    """`run_dir` for the chief; `run_dir/workers/<type>-<id>` for the other workers.

    Every worker runs the same callbacks (they take part in the collectives), but only the chief's files are
    the run's results. The others keep theirs apart (as Keras' multi-worker guide recommends); a stable
    name rather than a temporary folder, so that their `BackupAndRestore` backups survive a restart too.
    """
    if is_chief(strategy):
        return run_dir
    resolver = strategy.cluster_resolver
    return os.path.join(run_dir, "workers", f"{resolver.task_type}-{resolver.task_id}")


def local_predictor(model):
    """What to give `pipeline.predict_tracks` for `model` during training: the model itself, except under
    MultiWorkerMirroredStrategy, where a local forward pass is returned.

    There, `predict_on_batch` hands the whole batch to each worker's replica and then *gathers* every
    worker's outputs (Keras concatenates them across the cluster), so n tracks came back as 2n rows.
    Validation is not split across workers: each worker scores every track with its own (identical)
    copy of the weights, with no collective, so a worker never waits on its peer during validation and
    all workers see the same figures (they feed the same checkpoint, schedule and early-stopping
    decisions, which must agree to keep the workers in step).
    """
    if not isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return model
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: forward(tf.convert_to_tensor(x))


def configure_precision(mixed=None) -> str:
    """Set Keras' global dtype policy: `mixed_float16` when `mixed` (None: when a GPU is present).

    Call it before building the model. Model heads compute their scores in float32 (see
    `tfmood.models.stem.tagging_head`), and `compile` wraps the optimizer in a LossScaleOptimizer.
    """
    import keras

    if mixed is None:
        mixed = bool(tf.config.list_physical_devices("GPU"))
    policy = "mixed_float16" if mixed else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def worker_share(strategy: tf.distribute.Strategy):
    """`(index, count)` of this worker among the workers of a MultiWorkerMirroredStrategy run, else None.

    Each worker reads its share of every global batch (`pipeline.worker_datasets(worker=...)`); the index
    is the worker's input-pipeline id, the one `distribute_datasets_from_function` gives it (checked there).
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    from tensorflow.python.distribute import multi_worker_util

    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec()
    count = sum(spec.num_tasks(job) for job in ("chief", "worker") if job in spec.jobs)
    return multi_worker_util.id_in_cluster(spec, resolver.task_type, resolver.task_id), count


def prepare_fit(model, dataset):
    """Returns the dataset to give `model.fit`: unchanged, except under MultiWorkerMirroredStrategy.

    There, `dataset` is this worker's share of every global batch (`pipeline.worker_datasets`: rows
    `[i * B/N, (i + 1) * B/N)` of the one-process batch, reading only their crops), handed to the strategy as
    is with `distribute_datasets_from_function` (split further into per-replica batches when a worker has
    several GPUs). Every worker runs the same number of steps (the collectives wait for all workers), and one
    step's shares make up the one-process global batch (bit-equal with `--deterministic`, which also keeps
    the batches in plan order on every worker; not with `--data-service`, whose workers hand each trainer its
    batches in the order they finish them: docs/training.md). The strategy's own splitting (auto-sharding) is not used:
    DATA sharding has every worker read and augment every batch, then drop the others' rows; FILE sharding
    gives workers whole shards of unequal length.

    It also works around Keras 3 `fit` under that strategy (keras-team/keras#20585), where two steps of
    Keras' TF trainer assume in-process replicas:

    - before training, `fit` takes one batch and reduces that nested per-replica batch across replicas to
      build metrics and optimizer, which the collective strategy cannot do: build from the dataset's
      element spec instead (shapes and dtypes are all the build needs);
    - each step averages the scalar logs with `reduce(..., axis=0)`, invalid on scalars: average them
      across replicas with `axis=None` instead (MultiWorkerMirrored strategies only).

    Batch normalization is synchronized across the workers (`synchronize`): otherwise each worker normalizes
    with the statistics of its own share of the batch and keeps moving statistics of its own, so the workers'
    inference models differ from each other (their validation figures, which drive checkpointing and early
    stopping, disagree) and from a one-process run with the same global batch.
    """
    strategy = model.distribute_strategy
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return dataset
    index, count = worker_share(strategy)
    share = int(tf.nest.flatten(dataset.element_spec[0])[0].shape[0])  # a tensor, or a deferred batch's crops
    local = strategy.num_replicas_in_sync // count  # replicas (GPUs) on each worker
    if share % local:
        raise ValueError(f"The global batch size ({share * count}, --batch-size) must be a multiple of the number "
                         f"of replicas ({strategy.num_replicas_in_sync}: {count} workers x {local}).")
    per_replica = dataset if local == 1 else dataset.rebatch(share // local)  # consecutive pieces: one per GPU

    def dataset_fn(context):
        if (context.input_pipeline_id, context.num_input_pipelines) != (index, count):
            raise RuntimeError(f"This worker's share was built for input pipeline {index} of {count}; the strategy "
                               f"asks for {context.input_pipeline_id} of {context.num_input_pipelines}.")
        return per_replica
    distributed = strategy.distribute_datasets_from_function(dataset_fn)
    from tfmood.training.swa import batch_norm_layers  # the one BN-layer finder (nested models included)
    for layer in batch_norm_layers(model):
        synchronize(layer)  # read at call time: the train function is traced after this

    def build(iterator=None, data_batch=None):
        with strategy.scope():
            model._symbolic_build(data_batch=deferred.finished_spec(dataset.element_spec))
    model._maybe_symbolic_build = build  # instance attribute: this model only
    _patch_multi_worker_logs()
    return distributed


def synchronize(layer) -> None:
    """Batch statistics of `layer` (a BatchNormalization) over the global batch of all replicas, computed as
    a one-device BN computes them: the mean, then the mean squared deviation from it (two all-reduces).

    Not Keras' `synchronized=True`: it computes the variance as E[x^2] - E[x]^2 in float32, which cancels
    where a channel's mean is large against its spread (early layers on dB inputs). Measured, one SGD step of
    the demo MobileNetV2 on one device: that formula moves a weight by up to 5.3e-3 from the plain BN's
    step, where merely reversing the batch's rows moves it by 2.1e-3; two workers with this one, 3.9e-3
    (tests/test_distributed.py). The layer's config is unchanged (a saved model is a plain BN).
    """
    original = layer._moments

    def moments(inputs, mask):
        context = tf.distribute.get_replica_context()
        if mask is not None or context is None or context.num_replicas_in_sync == 1:
            return original(inputs, mask)
        x = tf.cast(inputs, tf.float32) if inputs.dtype in (tf.float16, tf.bfloat16) else inputs  # as Keras does
        axes = layer._reduction_axes
        count = tf.cast(tf.size(x), x.dtype) / tf.cast(tf.shape(x)[layer.axis], x.dtype)
        total, sums = context.all_reduce(tf.distribute.ReduceOp.SUM, [count, tf.reduce_sum(x, axes)])
        mean = sums / total
        shape = [1 if i in [a % len(x.shape) for a in axes] else -1 for i in range(len(x.shape))]
        # stop_gradient, as tf.nn.moments: the mean's own gradient term sums to zero
        squares = tf.reduce_sum(tf.math.squared_difference(x, tf.stop_gradient(tf.reshape(mean, shape))), axes)
        variance = context.all_reduce(tf.distribute.ReduceOp.SUM, squares) / total
        return tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype)
    layer._moments = moments  # an instance attribute: this layer only


def _patch_multi_worker_logs():
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "tfmood_patch", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and reduction in ("auto", "mean"):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)
    reduce_per_replica.tfmood_patch = True
    tf_trainer.reduce_per_replica = reduce_per_replica
