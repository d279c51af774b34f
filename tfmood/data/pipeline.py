"""tf.data pipelines over converted records: training crops and whole-track evaluation.

Training reads crops from a random-access frame store derived from the records (`framestore`): a crop
reads its own bytes only, in both samplings (one crop per track per epoch, as the recipes, or one per
`crop_frames` of audio), where a whole-track record would be read and parsed to keep a tenth of it.
Augmentation runs on whole batches. Evaluation reads the whole-track records: it never shuffles, never drops
a track, and yields tracks in split-TSV order.
"""


import numpy as np
import tensorflow as tf

from tfmood.data import augment, deferred, framestore, recipe_augment, schema, seeds, tf_reader
from tfmood.data.convert import read_manifest, shard_paths
from tfmood.protocol import Protocol

AUTOTUNE = tf.data.AUTOTUNE


def list_shards(records_dir: str, split: str) -> list:
    """The split's shards in index order, from the manifest: never a glob, which would also read stale shards
    of an earlier --num-shards and a split named `train-extra` as part of `train`."""
    return shard_paths(records_dir, split)


def crop_counts(track_frames, crop_frames, crops_per_track=None) -> np.ndarray:
    """Crops each track gives per epoch: `crops_per_track`, else one per `crop_frames` of audio (at least 1)."""
    track_frames = np.asarray(track_frames)
    if crops_per_track:
        return np.full(len(track_frames), int(crops_per_track))
    return np.maximum(1, (track_frames + crop_frames // 2) // crop_frames)


def train_dataset(records_dir, split="train", batch_size=32, crop_frames=960, crops_per_track=None,
                  shuffle_buffer=None, spec_augment=True, mixup_alpha=0.0, label_balancing=False,
                  seed=None, deterministic=False, crop_transforms=(), worker=None, reader="numpy", epochs=None,
                  augment_on="pipeline"):
    """Batches `(x [batch, bands, crop, 1], y [batch, 56])` for one epoch of training.

    Crops come from the split's frame store (`tfmood.data.framestore`, built from the records on first use).
    At each epoch TF draws the epoch's *plan* from a fresh epoch seed with stateless ops: which crops (one per
    `crop_frames` of audio at stratified offsets, or `crops_per_track` per track), at which offsets, in which
    order (a full permutation of the epoch's crops, so `shuffle_buffer` is unused, kept for callers). One
    `numpy_function` per batch then reads exactly those crops (read amplification ~1x, no per-crop Python in
    the graph), and the batch is augmented with its own seed, derived from the epoch seed: the same `seed` gives
    the same epochs run to run, and every epoch draws anew.

    `crop_transforms`: recipe transforms (`tfmood.data.recipe_augment` specs) run on each batch before SpecAugment.

    `augment_on="device"`: `x` is a deferred batch (`tfmood.data.deferred`: the raw crops and their
    augmentation's draws), which the training step finishes (`deferred.finish`) into the batch this gives with
    the default `"pipeline"`.

    `worker=(index, count)`: one of `count` workers training on the same global batches (several hosts): see
    `worker_datasets`, which this returns the first dataset of.

    For tf.data service (`tfmood.data_service`), whose workers run the graph without Python:
    `reader="tf"` reads the crops with TensorFlow ops only (`tf_reader`; the same crops as the default
    `"numpy"`), and `epochs=(first, last)` makes one iteration yield epochs `first .. last - 1` in order
    (`(last - first) * steps` batches, cardinality unknown) from a splittable source, each epoch's seed
    derived from `seed` and the epoch's number (`seeds.epoch_seed`) rather than drawn at each iteration: a
    service worker re-creates the dataset from its graph at every iteration, so an iteration-drawn seed
    would repeat every epoch.
    """
    if worker is not None:
        return worker_datasets(records_dir, split, batch_size, crop_frames, crops_per_track, worker=worker,
                               spec_augment=spec_augment, mixup_alpha=mixup_alpha, label_balancing=label_balancing,
                               seed=seed, deterministic=deterministic, crop_transforms=crop_transforms,
                               reader=reader, epochs=epochs, augment_on=augment_on)[0]
    return _train_datasets(records_dir, split, batch_size, crop_frames, crops_per_track, [None], spec_augment,
                           mixup_alpha, label_balancing, seed, deterministic, crop_transforms, reader, epochs,
                           augment_on)[0]


def worker_datasets(records_dir, split="train", batch_size=32, crop_frames=960, crops_per_track=None, *, worker,
                    spec_augment=True, mixup_alpha=0.0, label_balancing=False, seed=None, deterministic=False,
                    crop_transforms=(), reader="numpy", epochs=None, augment_on="pipeline"):
    """`(share, whole)`: worker `index`'s part of each global batch, and the global batches themselves.

    Every worker draws the same epoch plans (same `seed`: required) and element j of `share` is rows
    `[index * b, (index + 1) * b)`, `b = batch_size / count`, of global batch j exactly as `train_dataset`
    without `worker` gives them (same crops, same augmentation draws, mixup partners from the whole global
    batch): the workers' shares of one step make up the one-process global batch. The worker reads only its
    rows' crops and, with mixup, their partners' (at most 2b crops per step, b without mixup); augmentation
    runs on a global-batch-shaped tensor whose other rows are zeros (every draw depends on the row's place
    in the global batch), and the other rows are dropped. Deferred (`augment_on="device"`), the share holds
    its rows' crops and their partners' (`tfmood.data.deferred`), with their draws, and no other row.

    `whole` shares `share`'s epoch seeds (iterating either one advances both, as one dataset does in a
    one-process run): for passes that need the global batches on every worker (SWA's BN recomputation).
    """
    return _train_datasets(records_dir, split, batch_size, crop_frames, crops_per_track, [worker, None],
                           spec_augment, mixup_alpha, label_balancing, seed, deterministic, crop_transforms,
                           reader, epochs, augment_on)


def _train_datasets(records_dir, split, batch_size, crop_frames, crops_per_track, workers, spec_augment,
                    mixup_alpha, label_balancing, seed, deterministic, crop_transforms, reader="numpy", epochs=None,
                    augment_on="pipeline"):
    """One training dataset per entry of `workers` (None: the global batches), all on one epoch-seed stream."""
    if crop_frames < 1:
        raise ValueError(f"crop_frames must be >= 1. Received: {crop_frames}")
    if reader not in ("numpy", "tf"):
        raise ValueError(f"reader must be 'numpy' or 'tf'. Received: {reader!r}")
    if augment_on not in ("pipeline", "device"):
        raise ValueError(f"augment_on must be 'pipeline' or 'device'. Received: {augment_on!r}")
    manifest = read_manifest(records_dir)
    store = framestore.ensure(records_dir, split)
    plan, steps = _epoch_plan(store, crop_frames, crops_per_track, batch_size)

    source = _plan_source(plan, steps, seed, epochs)
    labels = tf.constant(store.labels)
    tag_counts = [manifest["splits"][split]["tag_counts"][t] for t in manifest["tags"]]
    transforms = recipe_augment.build(crop_transforms)
    dtype, bands = tf.as_dtype(manifest["dtype"]), store.bands

    for worker in workers:
        if worker is not None:
            _check_worker(worker, batch_size, seed)

    windows = tf_reader.ensure(store, tf_reader.window_frames_for(crop_frames)) if reader == "tf" else None

    def read(tracks, starts, n):
        if windows is not None:
            x = windows.crops(tracks, starts, crop_frames)
        else:
            x = tf.numpy_function(lambda t, s: store.crops(t, s, crop_frames), [tracks, starts], dtype,
                                  stateful=False)
        return tf.ensure_shape(x, [n, crop_frames, bands])

    def load(batch_seed, tracks, starts, worker=None):
        if augment_on == "device":  # drawn for the whole global batch, then only this worker's rows read
            d = deferred.draws(batch_size, bands, crop_frames, batch_seed, transforms, spec_augment)
            return _deferred_share(read, tracks, starts, batch_labels(tracks), d, batch_seed, batch_size, worker,
                                   mixup_alpha)
        if worker is None:
            x = read(tracks, starts, batch_size)
        else:  # only this worker's rows (and their mixup partners), at their places in the global batch
            rows = worker_rows(batch_size, worker, batch_seed if mixup_alpha else None)
            x = tf.scatter_nd(rows[:, None], read(tf.gather(tracks, rows), tf.gather(starts, rows), None),
                              [batch_size, crop_frames, bands])
        # Static band and crop sizes in the element spec: models that normalise per band (BatchNormalization on
        # axis 1, as CP-JKU's and Choi's) or cut segments need them when fit() traces the train step.
        x = tf.transpose(tf.cast(tf.ensure_shape(x, [batch_size, crop_frames, bands]), tf.float32), [0, 2, 1])
        x, y = deferred.augment_batch(x, batch_labels(tracks), batch_seed, transforms, spec_augment, mixup_alpha)
        if worker is not None:
            share = batch_size // worker[1]
            x, y = x[worker[0] * share:(worker[0] + 1) * share], y[worker[0] * share:(worker[0] + 1) * share]
        return x, y

    def batch_labels(tracks):
        y = tf.gather(labels, tracks)
        return augment.rarest_tag(y, tag_counts) if label_balancing else y

    def batches(worker):
        ds = source().map(lambda *e: load(*e, worker=worker), num_parallel_calls=AUTOTUNE,
                          deterministic=deterministic)
        return ds.prefetch(AUTOTUNE)

    return [batches(worker) for worker in workers]


def _plan_source(plan, steps, seed, epochs):
    """`source()`: a dataset of the plan's `(batch seed, tracks, starts)` for one epoch (`epochs` None), or for
    epochs `first .. last - 1` (`_epochs_plan`)."""
    if epochs is not None:
        return lambda: _epochs_plan(plan, steps, epochs, seed)
    # One element per epoch: a new epoch seed at every iteration of the dataset (Keras re-iterates per epoch).
    # Datasets built on this one `stream` object share its iteration count, hence their epoch seeds.
    stream = seeds.stream(seed, seeds.STREAM_PLAN).take(1)
    return lambda: stream.flat_map(plan).apply(tf.data.experimental.assert_cardinality(steps))  # a total for Keras


def _deferred_share(read, tracks, starts, y, d, batch_seed, batch_size, worker, mixup_alpha):
    """Rows of a global batch (`tracks`, `starts`, labels `y`, per-row draws `d`) as a deferred batch
    (`tfmood.data.deferred`): all of them without `worker`, else worker `(index, count)`'s share; only those
    rows' crops are read (`read(tracks, starts, n)`) and, with mixup, their partners'."""
    if worker is None:  # every row: no gathers
        x = read(tracks, starts, batch_size)
        rows = lambda t: t  # noqa: E731
    else:
        n = batch_size // worker[1]
        own = tf.range(worker[0] * n, (worker[0] + 1) * n)
        x = read(tf.gather(tracks, own), tf.gather(starts, own), n)
        rows = lambda t: deferred.gather_rows(t, own)  # noqa: E731
    if not mixup_alpha:
        return deferred.pack(x, rows(d)), rows(y)
    lam, perm = augment.mixup_draws(batch_size, mixup_alpha, batch_seed)
    partners = rows(perm)
    # The whole batch holds every partner (a copy, no read); a share mostly not: read them.
    px = tf.gather(x, partners) if worker is None else read(tf.gather(tracks, partners),
                                                            tf.gather(starts, partners), n)
    x = deferred.pack(x, rows(d), rows(lam), px, deferred.gather_rows(d, partners))
    return x, rows(augment.blend(y, lam, perm))


def _epoch_plan(store, crop_frames, crops_per_track, batch_size):
    """`(plan, steps)`: `plan(epoch_seed, first=0, n=steps)` is a dataset of the epoch's batches
    `first .. first + n - 1` as `(batch seed, tracks [batch], starts [batch])`, drawn with stateless ops from
    `epoch_seed`; `steps` counts full batches only (every replica step sees the same global batch size)."""
    counts = crop_counts(store.frames, crop_frames, crops_per_track)
    total = int(counts.sum())
    steps = total // batch_size
    track = tf.constant(np.repeat(np.arange(len(store)), counts), tf.int32)
    k = tf.constant(np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts), tf.int32)
    count = tf.constant(np.repeat(counts, counts), tf.int32)
    frames = tf.constant(np.repeat(store.effective_frames(crop_frames), counts), tf.int32)  # short: repeated

    def plan(epoch_seed, first=0, n=steps):
        u = tf.random.stateless_uniform([total], seeds.derive(epoch_seed, seeds.CROP))
        starts = augment.stratified_starts(frames, crop_frames, k, count, u)
        order = tf.random.experimental.stateless_shuffle(tf.range(total), seeds.derive(epoch_seed, seeds.PLAN_ORDER))
        order = tf.reshape(order[: steps * batch_size], [steps, batch_size])[first: first + n]
        batch_seeds = tf.random.experimental.stateless_split(seeds.derive(epoch_seed, seeds.PLAN_BATCHES), steps)
        return tf.data.Dataset.from_tensor_slices((batch_seeds[first: first + n], tf.gather(track, order),
                                                   tf.gather(starts, order)))
    return plan, steps


def _check_worker(worker, batch_size, seed):
    index, count = worker
    if not 0 <= index < count:
        raise ValueError(f"worker must be (index, count) with 0 <= index < count. Received: {worker!r}")
    if batch_size % count:
        raise ValueError(f"The global batch size ({batch_size}, --batch-size) must be a multiple of the number "
                         f"of workers ({count}): each worker takes an equal share of every batch.")
    if seed is None:
        raise ValueError("Training on several workers needs a seed (--seed): every worker draws the same epoch "
                         "plans from it and keeps its share of each batch.")


def worker_rows(batch_size, worker, mix_seed=None):
    """Rows of the global batch that worker `(index, count)` reads: its own `[index * b, (index + 1) * b)`,
    `b = batch_size / count`, and with mixup (`mix_seed`: the batch's seed) their partners, as
    `augment.mixup` draws them. Sorted, int32 `[<= 2b]`."""
    index, count = worker
    share = batch_size // count
    own = tf.range(index * share, (index + 1) * share)
    if mix_seed is None:
        return own
    partners = tf.gather(augment.permutation(batch_size, mix_seed), own)
    needed = tf.scatter_nd(tf.concat([own, partners], 0)[:, None], tf.ones([2 * share], tf.int32), [batch_size])
    return tf.cast(tf.where(needed > 0)[:, 0], tf.int32)


# Batches per element of the epochs-mode source: the unit a tf.data service dispatcher hands to a worker.
PLAN_CHUNK = 16


def _epochs_plan(plan, steps, epochs, seed):
    """Epochs `first .. last - 1` of the plan, from a splittable `range` of (epoch, chunk of batches)."""
    first, last = epochs
    if not 0 <= first < last:
        raise ValueError(f"epochs must be (first, last) with 0 <= first < last. Received: {epochs!r}")
    chunks = -(-steps // PLAN_CHUNK)
    base = seeds.fixed(seed, seeds.STREAM_PLAN)

    def chunk(i):
        return plan(seeds.epoch_seed(base, i // chunks), tf.cast(i % chunks, tf.int32) * PLAN_CHUNK, PLAN_CHUNK)
    # No assert_cardinality: under dynamic sharding each service worker sees only its part of the source.
    return tf.data.Dataset.range(first * chunks, last * chunks).flat_map(chunk)


def eval_dataset(records_dir, split="validation", crop_frames=960, segments=16):
    """Per track, in split-TSV order: `{"track_id", "segments" [segments, bands, crop, 1], "labels"}`.

    The segments are the scoring protocol's crops (tfmood.protocol.Protocol.crops, the implementation the
    exported model's signatures and `python -m tfmood.predict` use too).

    Shards hold tracks round-robin (track i in shard i % n), so a deterministic interleave with
    block_length 1 over the shards in index order restores the TSV order.
    """
    protocol = Protocol(int(crop_frames), int(segments))
    manifest = read_manifest(records_dir)
    shards = list_shards(records_dir, split)
    ds = tf.data.Dataset.from_tensor_slices(shards).interleave(
        tf.data.TFRecordDataset, cycle_length=len(shards), block_length=1)

    def to_segments(record):
        track = schema.parse(record, manifest["dtype"])
        x = protocol.crops(track["features"][None])[0]
        return {"track_id": track["track_id"], "segments": x[..., None], "labels": track["labels"]}

    return ds.map(to_segments, num_parallel_calls=AUTOTUNE, deterministic=True)


def predict_tracks(model, records_dir, split="validation", crop_frames=960, segments=16, batch_size=32):
    """Score every track of `split`: mean of the model's scores over `segments` evenly spaced crops.

    `model` is a Keras model or any callable mapping `[n, bands, crop, 1]` to `[n, 56]` scores.
    Returns `(track_ids [n], scores [n, 56] float32, labels [n, 56] bool)` in split-TSV order.
    """
    tracks_per_batch = max(1, batch_size // segments)
    ds = eval_dataset(records_dir, split, crop_frames, segments).batch(tracks_per_batch).prefetch(AUTOTUNE)
    call = model.predict_on_batch if hasattr(model, "predict_on_batch") else model
    ids, scores, labels = [], [], []
    for batch in ds:
        x = batch["segments"]
        flat = tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))
        s = np.asarray(call(flat), np.float32).reshape(x.shape[0], segments, -1)
        scores.append(s.mean(axis=1))
        ids.append(batch["track_id"].numpy())
        labels.append(batch["labels"].numpy() > 0.5)
    if not ids:
        raise ValueError(f"No tracks in split {split!r} of {records_dir!r}.")
    return np.concatenate(ids), np.concatenate(scores), np.concatenate(labels)
