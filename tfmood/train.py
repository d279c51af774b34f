"""Train a mood/theme tagger.

Usage:
    python -m tfmood.train --model mobilenetv2                       # built-in demo data, a few CPU minutes
    python -m tfmood.train --model mobilenetv2 --data records/jamendo-mel --epochs 100 --batch-size 32
    python -m tfmood.train --list-models
    # a published system with its paper's settings (docs/recipes.md); other flags override them
    python -m tfmood.train --list-recipes
    python -m tfmood.train --recipe cpjku2019-faresnet --data records/jamendo-mel
    python -m tfmood.train --recipe cpjku2019-faresnet --smoke          # tiny 1-epoch run on the demo data
    python -m tfmood.train --model vqvae --pretrain saved_models/vqvae.keras --data records/jamendo-mel
    # co-teaching (SELAB-HCMUS 2021): exports NAME (mean of both nets), NAME-a and NAME-b
    python -m tfmood.train --model efficientnet_b0 --peer rexnet_100 --forget-rate 0.05 --forget-epochs 10 \\
        --loss weighted_focal --optimizer adam --amsgrad --data records/jamendo-mel
    # CP-JKU: Adam 1e-4, mixed-loss mixup (alpha .3), constant / linear decay / lr0/100 schedule
    python -m tfmood.train --model fa_resnet --lr 1e-4 --schedule cpjku --mixup-alpha 0.3 --mixup-mode losses
    # SWA from epoch 150 every 3 epochs (CP-JKU); exports NAME-swa too. Resuming, determinism, several
    # GPUs or hosts (TF_CONFIG), mixed precision, XLA, TensorBoard views: docs/training.md
    python -m tfmood.train --model cp_resnet --data records/jamendo-mel --epochs 200 --swa-start 150 --swa-every 3

Writes `runs/<name>/` (best.keras, summary.json, thresholds.tsv, TensorBoard logs, a backup that lets a
killed run resume when the same command is re-run) and exports `saved_models/<name>/<version>/`.
"""

import argparse
import dataclasses
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ info/warning logs drown the epoch lines

from tfmood.training.config import DEMO_OVERRIDES, TrainConfig


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tfmood.train", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model name (see --list-models); default mobilenetv2 (or the recipe's)")
    p.add_argument("--list-models", action="store_true", help="print every model with a description and exit")
    p.add_argument("--data", help="converted records folder (tools/convert.py); default: built-in demo data")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size (split across replicas)")
    p.add_argument("--crop-frames", type=int, help="training crop length in frames (default 960, demo 128)")
    p.add_argument("--eval-segments", type=int, help="segments per track in evaluation (default 16)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    p.add_argument("--seed", type=int)
    p.add_argument("--mixup-alpha", type=float, help="mixup Beta(alpha, alpha); 0 disables (default)")
    p.add_argument("--no-spec-augment", dest="spec_augment", action="store_false", default=None)
    p.add_argument("--label-balancing", action="store_true", default=None,
                   help="train on each track's rarest tag only (HCMUS/SELAB)")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="model builder option, JSON value, e.g. alpha=0.35 (repeatable)")
    p.add_argument("--out", help="runs folder (default: runs)")
    p.add_argument("--name", help="run and SavedModel name (default: the model name)")
    p.add_argument("--export-dir", help="SavedModel base folder (default: saved_models)")
    p.add_argument("--no-export", dest="export", action="store_false", default=None)
    add_method_args(p)
    add_machinery_args(p)
    add_recipe_args(p)
    return p.parse_args(argv)


def add_recipe_args(p):
    """Published systems as configs (tfmood.recipes; docs/recipes.md); the other flags override their settings."""
    p.add_argument("--recipe", help="train a published system with its paper's settings (see --list-recipes)")
    p.add_argument("--smoke", action="store_true", help="with --recipe: a tiny 1-epoch run on the demo data (CI)")
    p.add_argument("--list-recipes", action="store_true", help="print every recipe with its published scores")
    p.add_argument("--pretrain", metavar="OUT.keras",
                   help="with --model vqvae: pre-train the Taiinn VQ-VAE on --data and write OUT.keras (step 1 "
                        "of the taiinn2019-* recipes; --epochs/--batch-size/--crop-frames/--lr/--seed apply)")


def add_machinery_args(p):
    """SWA, determinism, precision, XLA and data-service flags (tfmood.training.{swa,strategy}; docs/training.md)."""
    p.add_argument("--swa-start", type=int, help="SWA (CP-JKU): average weights from this 1-based epoch on")
    p.add_argument("--swa-every", type=int, help="SWA: collect every N epochs (default 3)")
    p.add_argument("--swa-keep", type=int, help="SWA snapshots swa-<n>.keras kept for averaging (default 4)")
    p.add_argument("--swa-bn-batches", type=int, help="SWA: cap the BN recomputation pass (default: 1 epoch)")
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="identical weights run to run with --seed (op determinism, ordered tf.data; slower)")
    p.add_argument("--mixed-precision", dest="mixed_precision", action="store_true", default=None,
                   help="float16 compute with float32 weights and scores (default: on when a GPU is present)")
    p.add_argument("--no-mixed-precision", dest="mixed_precision", action="store_false")
    p.add_argument("--xla", dest="xla", action="store_true", default=None,
                   help="compile train/predict steps with XLA (default: Keras' choice, on for GPUs)")
    p.add_argument("--no-xla", dest="xla", action="store_false")
    p.add_argument("--data-service", metavar="grpc://HOST:PORT",
                   help="make the training batches on tf.data service workers (python -m tfmood.data_service)")
    p.add_argument("--augment-on", choices=("auto", "pipeline", "device"),
                   help="where SpecAugment, mixup and crop transforms run: in tf.data on the CPU (pipeline), or "
                        "in the training step on the accelerator (device); default auto: device on a GPU")


def add_method_args(p):
    """Loss, mixup mode, schedule, optimizer and co-teaching flags (tfmood.training.{losses,schedules,...})."""
    p.add_argument("--loss", help="bce (default), focal or weighted_focal (SELAB-HCMUS)")
    p.add_argument("--mixup-mode", choices=("targets", "losses"),
                   help="targets: mix labels (default); losses: CP-JKU's mixed losses (needs --mixup-alpha)")
    p.add_argument("--schedule", help="plateau (default: x0.1 after 5 epochs without gain), cpjku, cosine or staged "
                                      "(Adam, then reload best + SGD; with --optimizer adam_sgd)")
    p.add_argument("--schedule-option", action="append", default=[], metavar="KEY=VALUE",
                   help="schedule option, e.g. decay_start=50 decay_end=250 for cpjku (repeatable)")
    p.add_argument("--optimizer", help="adam (default), adamw, sgd (Nesterov, momentum .9) or adam_sgd (staged)")
    p.add_argument("--weight-decay", type=float, help="decoupled weight decay (default: adamw 1e-2, others 0)")
    p.add_argument("--amsgrad", action="store_true", default=None, help="AMSGrad variant of adam/adamw")
    p.add_argument("--peer", help="co-teaching: train MODEL and this peer model together (SELAB-HCMUS 2021)")
    p.add_argument("--peer-option", action="append", default=[], metavar="KEY=VALUE",
                   help="peer builder option (default: the --model-option values if the peer is the same model)")
    p.add_argument("--forget-rate", type=float, help="co-teaching: fraction of each batch left out (default .05)")
    p.add_argument("--forget-epochs", type=int, help="co-teaching: epochs to ramp 0 -> forget rate (default 10)")
    p.add_argument("--monitor", help="model selection figure (best.keras, early stopping, plateau): "
                                     "val_PR-AUC-macro (default), val_ROC-AUC-macro, val_loss, val_att_ROC-AUC-macro ...")
    p.add_argument("--standardize", choices=("bands",),
                   help="bands: per-band (x - mean) / std from the training split (CP-JKU), cached beside the manifest")
    p.add_argument("--crop-transform", dest="crop_transforms", action="append", metavar="JSON",
                   type=_json_object, help='a recipe crop transform, e.g. \'{"name": "time_roll", "max_shift": 50}\' '
                                           "(repeatable; tfmood.data.recipe_augment)")


def options(items) -> dict:
    """`["alpha=0.35", "name=x"]` -> `{"alpha": 0.35, "name": "x"}` (JSON values, else strings)."""
    return {key: _json_or_str(raw) for key, _, raw in (item.partition("=") for item in items)}


def config_from_args(args) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
              if getattr(args, f.name, None) is not None}
    cfg = base_config(args, values)
    if args.data is None and not args.recipe:  # demo defaults, unless the user set them explicitly
        for key, value in DEMO_OVERRIDES.items():
            if key not in values:
                setattr(cfg, key, value)
    for item in args.model_option:
        key, _, raw = item.partition("=")
        cfg.model_options = {**cfg.model_options, key: _json_or_str(raw)}
    if args.peer_option:
        cfg.peer_options = options(args.peer_option)
    cfg.schedule_options = {**cfg.schedule_options, **options(args.schedule_option)}
    return cfg.validate()


def base_config(args, values: dict) -> TrainConfig:
    """`--recipe`'s config with the flags the user gave on top (`values`), else a plain `TrainConfig`."""
    if not args.recipe:
        if args.smoke:
            raise SystemExit("error: --smoke shrinks a recipe: add --recipe NAME (see --list-recipes)")
        return TrainConfig(**values)
    from tfmood import recipes
    return dataclasses.replace(recipes.get(args.recipe, smoke=args.smoke), **values)


def list_recipes():
    """Every recipe with its published scores, then each setting and where it comes from (code, paper, both,
    neither) and why."""
    from tfmood import recipes
    for name, line in recipes.describe().items():
        print(f"{name:32s} {line}")
        for setting in recipes.settings(name):
            print(f"    {setting.line()}")
    return 0


def pretrain_vqvae(args):
    """`--model vqvae --pretrain OUT.keras`: step 1 of the Taiinn recipes (`tfmood.training.vqvae_pretrain`)."""
    if args.model != "vqvae":
        raise SystemExit(f"error: --pretrain pre-trains the VQ-VAE: use --model vqvae. Received: --model {args.model}")
    from tfmood.data import demo
    from tfmood.training import vqvae_pretrain
    given = dict(epochs=args.epochs, batch_size=args.batch_size, crop_frames=args.crop_frames,
                 learning_rate=args.lr, seed=args.seed)
    history = vqvae_pretrain.pretrain(args.data or demo.ensure_demo_records(), args.pretrain, verbose=2,
                                      **{key: value for key, value in given.items() if value is not None})
    print(f"final loss {history['loss'][-1]:.5f}; wrote {args.pretrain} and "
          f"{vqvae_pretrain.encoder_weights_path(args.pretrain)}")
    return 0


def _json_object(raw):
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e}): {raw!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as {{\"name\": \"time_roll\"}}: {raw!r}")
    return value


def _json_or_str(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def main(argv=None):
    args = parse_args(argv)
    if args.list_recipes:  # before TensorFlow loads: instant
        return list_recipes()
    from tfmood import models  # after argparse, so --help is instant
    if args.list_models:
        for name, line in models.describe().items():
            print(f"{name:24s} {line}")
        return 0
    if args.pretrain:
        return pretrain_vqvae(args)
    if args.model:
        models.MODELS.get(args.model)  # fail fast with the list of known models
    import tensorflow as tf

    from tfmood.training.trainer import train
    cfg = config_from_args(args)
    try:
        train(cfg)
    except tf.errors.DataLossError as error:  # TF's message names no file: find the damaged shard
        from tfmood.data import demo
        from tfmood.data.inspect import explain_data_loss
        records = cfg.data or os.path.join(cfg.records_root, demo.VARIANTS[cfg.demo_bands][0])
        raise SystemExit(f"error: {explain_data_loss(records, error)}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
