"""Export a trained tagger as a versioned SavedModel that TF Serving (or `python -m tfmood.serve`) can serve.

    python -m tfmood.export --model runs/mobilenetv2/best.keras --name tagger \\
        [--thresholds runs/mobilenetv2/thresholds.tsv] [--version 3] [--out saved_models] \\
        [--crop-frames 960] [--segments 16]

writes `saved_models/tagger/<version>/`. The scoring protocol (tfmood.protocol: `segments` evenly spaced
crops of `crop_frames` frames, short clips tiled up to one crop, scores averaged) is part of the model:
both scoring signatures apply it, so one clip gets one answer whichever way it is sent.

- `serving_default`: `mel` float32 `[batch, bands, time]` (any time >= 1) -> the protocol -> `scores`
  float32 `[batch, 56]`, `tags` string `[batch, 56]`;
- `serve_waveform` (96-band models): `waveform` float32 `[batch, samples]` mono at 12 kHz -> log-mel
  frontend -> the protocol -> the same outputs;
- `serve_raw`: `mel` -> the model run once on the whole input (no crops; inputs shorter than the model's
  minimum are tiled up to it) -> the same outputs. For clients that do their own cropping.

plus `assets/tags.txt`, `assets/thresholds.tsv` (when given), `assets/tfmood.json` (with the "protocol")
and a TF Serving warm-up file `assets.extra/tf_serving_warmup_requests` (needs `tensorflow-serving-api`).
`--crop-frames`/`--segments` default to the protocol of the run that wrote the model (its summary.json),
else 960 and 16.
"""

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import tfmood
from tfmood.exported import read_thresholds, threshold_vector  # noqa: F401  (public here too)
from tfmood.protocol import Protocol
from tfmood.serving.config import write_models_config
from tfmood.serving.warmup import write_warmup_requests
from tfmood.tags import TAGS

log = logging.getLogger(__name__)

SAMPLE_RATE = 12000
WAVEFORM_BANDS = 96  # tfmood.frontend.log_mel_tf always gives 96 bands
MEL_SIGNATURE = "serving_default"
WAVEFORM_SIGNATURE = "serve_waveform"
RAW_SIGNATURE = "serve_raw"


def export_model(model, name, base_dir="saved_models", thresholds=None, version=None, tags=TAGS, *,
                 protocol=None, crop_frames=None, segments=None, min_frames=None, warmup=True):
    """Write `model` to `base_dir/name/<version>/` atomically and return that path.

    `thresholds`: per-tag decision thresholds (a {tag: value} mapping, a sequence in `tags` order, or a
    `tag<TAB>threshold` TSV path), stored as `assets/thresholds.tsv`. `version`: an integer, default
    the highest existing version + 1. `protocol`: a tfmood.protocol.Protocol, or build one from
    `crop_frames` and `segments` (default 960 and 16). `min_frames`: the shortest input the model accepts
    (probed when None); `serve_raw` tiles shorter requests up to it.
    """
    name = _check_name(name)
    tags = tuple(tags)
    bands = _check_model(model, len(tags))
    protocol = make_protocol(protocol, crop_frames, segments)
    threshold_values = None if thresholds is None else threshold_vector(thresholds, tags)
    min_frames = probe_min_frames(model, bands) if min_frames is None else int(min_frames)
    if protocol.crop_frames < min_frames:
        raise ValueError(f"The model needs inputs of at least {min_frames} frames; the scoring protocol's "
                         f"crops have {protocol.crop_frames}. Pass a larger crop_frames.")

    model_dir = Path(base_dir) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(model_dir) if version is None else _check_version(version)
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"Version {version} of model {name!r} already exists at {final}; "
                              f"pass another --version or omit it to use {next_version(model_dir)}.")
    # TF Serving ignores non-numeric folder names, so it never sees the half-written export.
    tmp = model_dir / f".tmp-{version}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        info = _write_savedmodel(model, tmp, tags, bands, min_frames, protocol)
        _write_assets(tmp, name, tags, threshold_values, info)
        if warmup:
            write_warmup_requests(tmp, name, info["signatures"], bands, protocol.crop_frames)
        if final.exists():
            raise FileExistsError(f"Version {version} of model {name!r} appeared at {final} during the export.")
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("Exported %s version %d to %s", name, version, final)
    return str(final)


def make_protocol(protocol=None, crop_frames=None, segments=None):
    """`protocol` itself, or a Protocol of `crop_frames` and `segments` (None: the defaults)."""
    if protocol is not None:
        if crop_frames is not None or segments is not None:
            raise ValueError("Pass either `protocol` or `crop_frames`/`segments`, not both.")
        return protocol
    values = {k: int(v) for k, v in (("crop_frames", crop_frames), ("segments", segments)) if v is not None}
    return Protocol(**values)


def run_protocol(model_path):
    """The scoring protocol recorded in the summary.json next to a training run's `.keras` file, or None."""
    summary = Path(model_path).parent / "summary.json"
    try:
        values = json.loads(summary.read_text()).get("protocol")
    except (OSError, ValueError, AttributeError):
        return None
    return None if values is None else Protocol.from_dict(values, str(summary))


def next_version(model_dir):
    """Highest numeric version folder in `model_dir` + 1 (1 when none), the way TF Serving numbers them."""
    versions = [int(p.name) for p in Path(model_dir).iterdir() if p.is_dir() and p.name.isdigit()] \
        if Path(model_dir).is_dir() else []
    return max(versions, default=0) + 1


def probe_min_frames(model, bands, limit=1 << 14):
    """Shortest time length the model runs on: pooling/valid convolutions can need several frames."""
    probe = _all_layer_outputs(model)

    def runs(frames):
        # A too-short input can still "run": a valid convolution leaves an empty map (oneDNN even returns a
        # wrong non-empty one) that pools to garbage. Keras' symbolic shapes tell; then a real run must agree.
        try:
            specs = probe.compute_output_spec(keras.KerasTensor((1, bands, frames, 1)))
            if any(d is not None and d < 1 for spec in tf.nest.flatten(specs) for d in spec.shape):
                return False
            scores = model(tf.zeros([1, bands, frames, 1]), training=False)
        except (ValueError, tf.errors.InvalidArgumentError):
            return False
        return bool(np.all(np.isfinite(keras.ops.convert_to_numpy(scores))))

    if runs(1):
        return 1
    high = 2
    while not runs(high):
        if high >= limit:
            raise ValueError(f"The model fails on every input length up to {limit} frames; "
                             "check its input shape or pass min_frames.")
        high *= 2
    low = high // 2  # fails at low, runs at high: bisect
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if runs(mid) else (mid, high)
    return high


def _all_layer_outputs(model):
    """A model returning every top-level layer's output (to spot empty maps), or `model` if not functional."""
    try:
        outputs = [layer.output for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        return keras.Model(model.inputs, outputs)
    except (AttributeError, ValueError, TypeError):  # subclassed models, shared layers
        return model


# === Serving functions ===

def _write_savedmodel(model, path, tags, bands, min_frames, protocol):
    tag_names = tf.constant(list(tags))

    def outputs(scores):
        scores = tf.cast(scores, tf.float32)  # mixed-precision models may give float16, which REST cannot write
        return {"scores": scores, "tags": tf.tile(tag_names[None, :], [tf.shape(scores)[0], 1])}

    def score(mel):
        return model(_tile_to(mel, min_frames)[..., None], training=False)

    @tf.function(input_signature=[tf.TensorSpec([None, bands, None], tf.float32, name="mel")])
    def serve_mel(mel):
        return outputs(protocol.score(score, mel))

    @tf.function(input_signature=[tf.TensorSpec([None, bands, None], tf.float32, name="mel")])
    def serve_raw(mel):
        return outputs(score(mel))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(MEL_SIGNATURE, serve_mel)
    archive.add_endpoint(RAW_SIGNATURE, serve_raw)
    signatures = [MEL_SIGNATURE, RAW_SIGNATURE]
    log_mel_tf = _waveform_frontend(bands)
    if log_mel_tf is not None:
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
        def serve_waveform(waveform):
            # No samples is a client error (400), not a clip of silence to score confidently.
            tf.debugging.assert_positive(tf.shape(waveform)[1], message="waveform needs at least one sample")
            return outputs(protocol.score(score, log_mel_tf(waveform)))

        archive.add_endpoint(WAVEFORM_SIGNATURE, serve_waveform)
        signatures.append(WAVEFORM_SIGNATURE)
    archive.write_out(str(path), verbose=False)
    return {"bands": bands, "min_frames": min_frames, "protocol": protocol.to_dict(), "signatures": signatures}


def _waveform_frontend(bands):
    """`tfmood.frontend.log_mel_tf`, or None (with the reason logged) when the waveform signature can't be built."""
    if bands != WAVEFORM_BANDS:
        log.warning("No %s signature: the frontend gives %d mel bands, the model takes %d.",
                    WAVEFORM_SIGNATURE, WAVEFORM_BANDS, bands)
        return None
    try:
        from tfmood.frontend import log_mel_tf
    except ImportError as error:
        log.warning("No %s signature: tfmood.frontend is unavailable (%s).", WAVEFORM_SIGNATURE, error)
        return None
    return log_mel_tf


def _tile_to(mel, min_frames):
    """Repeat `mel` [batch, bands, time] along time up to `min_frames` (no-op for longer inputs)."""
    if min_frames <= 1:
        return mel
    frames = tf.shape(mel)[2]
    check = tf.debugging.assert_positive(frames, message="mel needs at least one time frame")
    with tf.control_dependencies([check] if check is not None else []):  # before the division (see protocol)
        frames = tf.identity(frames)
    repeats = tf.maximum(1, (min_frames + frames - 1) // frames)
    return tf.tile(mel, [1, 1, repeats])[:, :, :tf.maximum(frames, min_frames)]


# === Assets ===

def _write_assets(path, name, tags, thresholds, info):
    assets = Path(path) / "assets"
    assets.mkdir(exist_ok=True)
    (assets / "tags.txt").write_text("".join(f"{t}\n" for t in tags))
    if thresholds is not None:
        (assets / "thresholds.tsv").write_text("".join(f"{t}\t{v:.6g}\n" for t, v in zip(tags, thresholds)))
    meta = dict(model=name, tfmood_version=tfmood.__version__, sample_rate=SAMPLE_RATE,
                num_tags=len(tags),
                thresholds_file="thresholds.tsv" if thresholds is not None else None, **info)
    (assets / "tfmood.json").write_text(json.dumps(meta, indent=2) + "\n")


# === Argument checks ===

def _check_model(model, num_tags):
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[3] != 1 or shape[1] is None:
        raise ValueError(f"Expected a model taking [batch, bands, time, 1] spectrograms. "
                         f"Received input shape {shape}.")
    if model.output_shape[-1] != num_tags:
        raise ValueError(f"The model gives {model.output_shape[-1]} scores but {num_tags} tags were given.")
    return int(shape[1])


def _check_name(name):
    name = str(name)
    if not name or any(c in name for c in "/:\\") or name.startswith("."):
        raise ValueError(f"Model name must be non-empty, without '/', ':' or a leading '.'. Received {name!r}.")
    return name


def _check_version(version):
    if isinstance(version, bool) or int(version) != version or int(version) < 1:
        raise ValueError(f"version must be a positive integer. Received {version!r}.")
    return int(version)


# === CLI ===

def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfmood.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved Keras model (.keras)")
    parser.add_argument("--name", required=True, help="model name in the serving URL /v1/models/NAME")
    parser.add_argument("--thresholds", help="tag<TAB>threshold TSV to ship as assets/thresholds.tsv")
    parser.add_argument("--version", type=int, help="version number (default: highest existing + 1)")
    parser.add_argument("--out", default="saved_models", help="base directory (default: saved_models)")
    parser.add_argument("--crop-frames", type=int,
                        help="scoring protocol: frames per crop (default: the run's, else 960)")
    parser.add_argument("--segments", type=int,
                        help="scoring protocol: crops averaged per clip (default: the run's, else 16)")
    parser.add_argument("--models-config", action="store_true",
                        help="also (re)write OUT/models.config listing every model folder in OUT")
    parser.add_argument("--model-root", help="base_path prefix in models.config, e.g. /models inside Docker "
                                             "(default: absolute local paths)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import tfmood.models  # noqa: F401  (registers tfmood's custom layers for deserialisation)
    try:
        recorded = run_protocol(args.model) or Protocol()
        protocol = Protocol(recorded.crop_frames if args.crop_frames is None else args.crop_frames,
                            recorded.segments if args.segments is None else args.segments, recorded.short_clips)
    except ValueError as error:
        parser.error(str(error))
    model = keras.saving.load_model(args.model, compile=False)
    path = export_model(model, args.name, args.out, args.thresholds, args.version, protocol=protocol)
    print(path)
    if args.models_config:
        names = sorted(p.name for p in Path(args.out).iterdir() if p.is_dir() and next_version(p) > 1)
        print(write_models_config(args.out, names, model_root=args.model_root))
    return path


if __name__ == "__main__":
    main()
