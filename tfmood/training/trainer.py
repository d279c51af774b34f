"""The trainer: records -> tf.data -> model under a tf.distribute strategy -> fit() -> summary + SavedModel."""

import dataclasses
import json
import os

import keras
import tensorflow as tf

from tfmood import models
from tfmood.data import band_stats, deferred, demo, pipeline
from tfmood.data.convert import read_manifest
from tfmood.evaluation.metrics import official_metrics
from tfmood.evaluation.thresholds import decide, fit_thresholds, save_thresholds
from tfmood.training import callbacks as cb
from tfmood.training import init
from tfmood.training import coteaching, losses, optimizers, schedules
from tfmood.training import resume, swa, tensorboard
from tfmood.training.config import TrainConfig, monitor_branch, monitor_mode
from tfmood.training.strategy import (cluster_guard, configure_precision, get_strategy, is_chief, prepare_fit,
                                     worker_dir, worker_share)


@dataclasses.dataclass
class RunPaths:
    root: str

    def __post_init__(self):
        os.makedirs(self.root, exist_ok=True)

    def __getattr__(self, name):
        files = {"logs": "logs", "best": "best.keras", "backup": "backup", "summary": "summary.json",
                 "history": "history.jsonl", "thresholds": "thresholds.tsv", "config": "config.json"}
        if name in files:
            return os.path.join(self.root, files[name])
        raise AttributeError(name)


def build_and_compile(cfg: TrainConfig, bands: int, records: str = None):
    model = models.build(cfg.model, input_shape=(bands, None, 1), **cfg.model_options)
    if cfg.standardize == "bands":  # CP-JKU: a fixed per-band (x - mean) / std from the training split
        model = band_stats.standardize_model(model, cfg, records)
    if cfg.peer:
        model = coteaching.build_pair(cfg, model, bands)
    mixed = cfg.mixup_mode == "losses"
    # Mixed-loss targets are packed [y_a | y_b | lam]: training AUCs are skipped (validation has its own).
    metrics = [] if mixed else [keras.metrics.AUC(curve="PR", multi_label=True, name="PR-AUC-macro"),
                                keras.metrics.AUC(curve="ROC", multi_label=True, name="ROC-AUC-macro"),
                                # multi_label=False pools every (track, tag) pair: the micro averages
                                keras.metrics.AUC(curve="PR", multi_label=False, name="PR-AUC-micro"),
                                keras.metrics.AUC(curve="ROC", multi_label=False, name="ROC-AUC-micro")]
    model.compile(optimizer=optimizers.build(cfg), loss=losses.get(cfg.loss, mixed=mixed), metrics=metrics,
                  jit_compile="auto" if cfg.xla is None else cfg.xla)
    return model


def make_callbacks(cfg: TrainConfig, paths: RunPaths, records: str, chief: bool):
    evaluation = cb.TrackEvaluation(records, "validation", cfg.crop_frames, cfg.eval_segments,
                                    cfg.batch_size, paths.history if chief else None,
                                    branches=monitor_branch(cfg.monitor) is not None)
    # Model selection on cfg.monitor (the source's metric); a resumed run keeps its best value so far.
    mode = monitor_mode(cfg.monitor)
    best = resume.best_so_far(paths.history, cfg.monitor, mode)
    checkpoint = keras.callbacks.ModelCheckpoint(paths.best, monitor=cfg.monitor, mode=mode, save_best_only=True,
                                                 initial_value_threshold=best)
    # Order matters: TrackEvaluation writes the validation figures that the others read.
    return [evaluation,
            checkpoint,
            *schedules.callbacks(cfg, paths.best),  # cfg.schedule: plateau by default; staged reloads best
            *coteaching.callbacks(cfg),      # the forget-rate ramp when training a co-teaching pair
            keras.callbacks.EarlyStopping(monitor=cfg.monitor, mode=mode, patience=cfg.early_stopping_patience),
            keras.callbacks.TensorBoard(paths.logs, write_graph=False, profile_batch=0),
            keras.callbacks.BackupAndRestore(paths.backup),
            cb.EpochPrinter(cfg.epochs)]


def add_machinery(callbacks, cfg, paths, records, train_ds) -> list:
    """SWA, the extra TensorBoard views and resumable callback counters, each placed where it must be."""
    callbacks = swa.attach(callbacks, cfg, paths.root, records, train_ds)
    callbacks = tensorboard.attach(callbacks, cfg, paths.logs)
    return resume.attach(callbacks, paths.root)


def training_data(cfg: TrainConfig, records: str, worker=None, service=None, **reading):
    """`(what fit trains on, what SWA's BN pass reads)`: one dataset, twice, in a one-process run.

    `worker=(index, count)` (several hosts, `strategy.worker_share`): this worker's share of every global
    batch, and the global batches themselves, on one epoch-seed stream (`pipeline.worker_datasets`).
    `service` (`--data-service`): what fit trains on is made by tf.data service workers (`tfmood.data_service`;
    `reading` then selects the pipeline's service mode: `reader="tf", epochs=(first, last)`).
    """
    args = dict(spec_augment=cfg.spec_augment, mixup_alpha=cfg.mixup_alpha if cfg.mixup_mode == "targets" else 0.0,
                label_balancing=cfg.label_balancing, seed=cfg.seed, deterministic=cfg.deterministic,
                crop_transforms=cfg.crop_transforms, augment_on=deferred.resolve_mode(cfg.augment_on), **reading)
    if worker is None:
        train_ds = pipeline.train_dataset(records, "train", cfg.batch_size, cfg.crop_frames, cfg.crops_per_track,
                                          **args)
        datasets = [train_ds]
    else:
        datasets = pipeline.worker_datasets(records, "train", cfg.batch_size, cfg.crop_frames, cfg.crops_per_track,
                                            worker=worker, **args)
    if service:  # this worker's batches, made by the service's workers (docs/training.md)
        from tfmood import data_service
        datasets[0] = data_service.distribute(datasets[0], service)
    if cfg.mixup_mode == "losses":  # CP-JKU: mix inputs here, mix the losses in `losses.MixedLoss`
        # (with several workers: partners within each worker's share, drawn from a stream of its own)
        datasets = [losses.mixed_loss_batches(ds, cfg.mixup_alpha, cfg.seed) for ds in datasets]
    return datasets[0], datasets[-1]


def finish_in_step(model, cfg: TrainConfig, spec) -> None:
    """When the batches are deferred (`augment_on="device"`, `tfmood.data.deferred`), the model's training step
    first finishes each one (augments it, on the step's device), then runs as usual: `fit`'s own step, a
    co-teaching pair's or any other. Keras builds the model's metrics from the finished batches' spec."""
    if not deferred.is_deferred(spec[0]):
        return
    finish, step, build = deferred.finisher(cfg.crop_transforms), model.train_step, model._maybe_symbolic_build

    def train_step(data):
        x, *rest = data
        return step((finish(x), *rest))
    model.train_step = train_step  # instance attributes: this model only
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: build(data_batch=deferred.finished_spec(spec))


def train(cfg: TrainConfig) -> dict:
    """Train, then evaluate the best checkpoint on validation, fit thresholds, export. Returns the summary."""
    cfg.validate()
    records = cfg.data or demo.ensure_demo_records(cfg.records_root, bands=cfg.demo_bands)
    bands = read_manifest(records)["bands"]
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:  # identical weights run to run, at some speed cost
        tf.config.experimental.enable_op_determinism()
    strategy = get_strategy()
    chief = is_chief(strategy)
    configure_precision(cfg.mixed_precision)
    paths = RunPaths(worker_dir(strategy, os.path.join(cfg.out, cfg.run_name)))  # non-chief: a folder of its own
    resume.prepare_history(paths.history, resume.completed_epochs(paths.backup))
    with open(paths.config, "w") as f:
        json.dump(dataclasses.asdict(cfg), f, indent=1)
    train_ds, pass_ds = training_data(cfg, records, worker_share(strategy))
    with strategy.scope():
        model = build_and_compile(cfg, bands, records)
        train_stats = read_manifest(records)["splits"]["train"]
        init.set_prior_bias(model, list(train_stats["tag_counts"].values()), train_stats["tracks"])
    print(f"Training {cfg.model} ({model.count_params():,} parameters) on {records} with "
          f"{strategy.num_replicas_in_sync} replica(s), global batch {cfg.batch_size}.", flush=True)
    callbacks = add_machinery(make_callbacks(cfg, paths, records, chief), cfg, paths, records, pass_ds)
    # shuffle=False: the tf.data pipeline shuffles; Keras would only warn that it can't.
    fit_ds, steps = train_ds, None
    if cfg.data_service:  # all the run's epochs in one iteration of the service's job, `steps` per epoch
        steps, first = int(train_ds.cardinality()), min(resume.completed_epochs(paths.backup), cfg.epochs - 1)
        fit_ds, _ = training_data(cfg, records, worker_share(strategy), reader="tf", epochs=(first, cfg.epochs),
                                  service=cfg.data_service)
    finish_in_step(model, cfg, fit_ds.element_spec)  # augment_on="device": augment in the training step
    fit_ds = prepare_fit(model, fit_ds)  # multi-worker: this worker's share, distributed + a Keras 3 workaround
    with cluster_guard(strategy):  # multi-worker: a peer that is gone -> one clear PeerLost error
        model.fit(fit_ds, epochs=cfg.epochs, steps_per_epoch=steps, verbose=0, callbacks=callbacks, shuffle=False)
    return finish(cfg, paths, records, chief)


def finish(cfg: TrainConfig, paths: RunPaths, records: str, chief: bool) -> dict:
    """Score the best checkpoint on validation, fit per-tag thresholds, write summary.json and export."""
    best = keras.models.load_model(paths.best)
    _, scores, labels = pipeline.predict_tracks(best, records, "validation", cfg.crop_frames,
                                                cfg.eval_segments, cfg.batch_size)
    thresholds = fit_thresholds(labels, scores)
    from tfmood.protocol import Protocol  # the scoring protocol validation used: export reads it from here

    summary = {"model": cfg.model, "records": records, "checkpoint": paths.best,
               "protocol": Protocol(int(cfg.crop_frames), int(cfg.eval_segments)).to_dict(),
               "validation": official_metrics(labels, scores, decide(scores, thresholds)),
               "note": "P/R/F use thresholds fitted on this same validation split (optimistic)."}
    # A co-teaching pair: the mean is the result; each net is also scored, checkpointed and exported.
    summary.update(coteaching.member_summaries(best, cfg, paths, records, chief))
    summary.update(swa.summarize(cfg, paths, records, chief))  # SWA: the averaged model, exported as NAME-swa
    if chief:
        save_thresholds(paths.thresholds, thresholds)
        if cfg.export:
            from tfmood.export import export_model
            summary["saved_model"] = str(export_model(best, cfg.run_name, cfg.export_dir, thresholds,
                                                      crop_frames=cfg.crop_frames, segments=cfg.eval_segments))
        with open(paths.summary, "w") as f:
            json.dump(summary, f, indent=1)
    report(summary, paths)
    return summary


def report(summary, paths):
    v = summary["validation"]
    print(f"\nValidation PR-AUC-macro {v['PR-AUC-macro']:.4f}  ROC-AUC-macro {v['ROC-AUC-macro']:.4f}")
    print(f"  best checkpoint  {paths.best}")
    print(f"  summary          {paths.summary}")
    print(f"  thresholds       {paths.thresholds}")
    if "saved_model" in summary:
        print(f"  SavedModel       {summary['saved_model']}")
    if "swa" in summary:  # tfmood.training.swa.summarize
        swa_run = summary["swa"]
        exported = f", SavedModel {swa_run['saved_model']}" if "saved_model" in swa_run else ""
        print(f"  SWA model        {swa_run['checkpoint']} (validation PR-AUC-macro "
              f"{swa_run['validation']['PR-AUC-macro']:.4f}{exported})")
    print(f"  TensorBoard logs {paths.logs}\n  view them with   tensorboard --logdir {paths.logs}")
