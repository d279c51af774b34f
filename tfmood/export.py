"""Export a trained tagger as a versioned SavedModel that TF Serving (or `python -m tfmood.serve`) can serve.

    python -m tfmood.export --model runs/mobilenetv2/best.keras --name tagger \\
        [--thresholds runs/mobilenetv2/thresholds.tsv] [--version 3] [--out saved_models]

writes `saved_models/tagger/<version>/` with two predict signatures:

- `serving_default`: `mel` float32 `[batch, bands, time]` (any time >= 1) -> `scores` float32 `[batch, 56]`,
  `tags` string `[batch, 56]`;
- `serve_waveform` (96-band models): `waveform` float32 `[batch, samples]` mono at 12 kHz -> log-mel frontend ->
  the mean score of `segments` evenly spaced crops of `crop_frames` -> the same outputs;

plus `assets/tags.txt`, `assets/thresholds.tsv` (when given), `assets/tfmood.json` and a TF Serving warm-up file
`assets.extra/tf_serving_warmup_requests` (needs the optional `tensorflow-serving-api` package).
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
from tfmood.serving.config import write_models_config
from tfmood.serving.warmup import write_warmup_requests
from tfmood.tags import TAGS

log = logging.getLogger(__name__)

CROP_FRAMES = 960  # 16 x 960 frames is the evaluation protocol of tfmood.data.pipeline.predict_tracks
SEGMENTS = 16
SAMPLE_RATE = 12000
WAVEFORM_BANDS = 96  # tfmood.frontend.log_mel_tf always gives 96 bands
MEL_SIGNATURE = "serving_default"
WAVEFORM_SIGNATURE = "serve_waveform"


def export_model(model, name, base_dir="saved_models", thresholds=None, version=None, tags=TAGS, *,
                 crop_frames=CROP_FRAMES, segments=SEGMENTS, min_frames=None, warmup=True):
    """Write `model` to `base_dir/name/<version>/` atomically and return that path.

    `thresholds`: per-tag decision thresholds (a {tag: value} mapping, a sequence in `tags` order, or a
    `tag<TAB>threshold` TSV path), stored as `assets/thresholds.tsv`. `version`: an integer, default
    the highest existing version + 1. `min_frames`: the shortest input the model accepts (probed when None);
    shorter requests are tiled up to it inside the serving function.
    """
    name = _check_name(name)
    tags = tuple(tags)
    bands = _check_model(model, len(tags))
    _check_positive(crop_frames=crop_frames, segments=segments)
    threshold_values = None if thresholds is None else threshold_vector(thresholds, tags)
    min_frames = probe_min_frames(model, bands) if min_frames is None else int(min_frames)

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
        info = _write_savedmodel(model, tmp, tags, bands, min_frames, crop_frames, segments)
        _write_assets(tmp, name, tags, threshold_values, info)
        if warmup:
            write_warmup_requests(tmp, name, info["signatures"], bands, crop_frames)
        if final.exists():
            raise FileExistsError(f"Version {version} of model {name!r} appeared at {final} during the export.")
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("Exported %s version %d to %s", name, version, final)
    return str(final)


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


def threshold_vector(thresholds, tags=TAGS):
    """Thresholds as float32 [len(tags)] from a mapping, a sequence in tag order, or a TSV file path."""
    if isinstance(thresholds, (str, os.PathLike)):
        thresholds = read_thresholds(thresholds)
    if hasattr(thresholds, "keys"):
        missing = [t for t in tags if t not in thresholds]
        if missing:
            raise ValueError(f"Thresholds are missing {len(missing)} tags, e.g. {missing[:3]}.")
        thresholds = [thresholds[t] for t in tags]
    values = np.asarray(thresholds, dtype=np.float32)
    if values.shape != (len(tags),):
        raise ValueError(f"Expected {len(tags)} thresholds, one per tag. Received shape {values.shape}.")
    return values


def read_thresholds(path):
    """`tag<TAB>threshold` lines (an optional header line whose second field is not a number is skipped)."""
    table = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            table[fields[0].removeprefix("mood/theme---")] = float(fields[1])
        except (IndexError, ValueError):
            if number == 1:
                continue
            raise ValueError(f"{path}:{number}: expected 'tag<TAB>threshold'. Received {line!r}.")
    return table


# === Serving functions ===

def _write_savedmodel(model, path, tags, bands, min_frames, crop_frames, segments):
    tag_names = tf.constant(list(tags))

    def outputs(scores):
        scores = tf.cast(scores, tf.float32)  # mixed-precision models may give float16, which REST cannot write
        return {"scores": scores, "tags": tf.tile(tag_names[None, :], [tf.shape(scores)[0], 1])}

    def score(mel):
        return model(_tile_to(mel, min_frames)[..., None], training=False)

    @tf.function(input_signature=[tf.TensorSpec([None, bands, None], tf.float32, name="mel")])
    def serve_mel(mel):
        return outputs(score(mel))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(MEL_SIGNATURE, serve_mel)
    signatures = [MEL_SIGNATURE]
    log_mel_tf = _waveform_frontend(bands)
    if log_mel_tf is not None:
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
        def serve_waveform(waveform):
            return outputs(segment_average(score, log_mel_tf(waveform), crop_frames, segments))

        archive.add_endpoint(WAVEFORM_SIGNATURE, serve_waveform)
        signatures.append(WAVEFORM_SIGNATURE)
    archive.write_out(str(path), verbose=False)
    return {"bands": bands, "min_frames": min_frames, "crop_frames": crop_frames, "segments": segments,
            "signatures": signatures}


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
    tf.debugging.assert_positive(frames, message="mel needs at least one time frame")
    repeats = tf.maximum(1, (min_frames + frames - 1) // frames)
    return tf.tile(mel, [1, 1, repeats])[:, :, :tf.maximum(frames, min_frames)]


def segment_average(score, mel, crop_frames, segments):
    """Mean of `score` over `segments` evenly spaced `crop_frames` crops of mel [batch, bands, frames].

    Clips no longer than one crop are scored whole (one segment). Starts are round(linspace(0, frames -
    crop, segments)), the crops of all clips are scored in one batch.
    """
    batch, bands, frames = tf.shape(mel)[0], tf.shape(mel)[1], tf.shape(mel)[2]
    crop = tf.minimum(frames, crop_frames)
    count = tf.where(frames > crop_frames, segments, 1)
    starts = tf.cast(tf.round(tf.linspace(0.0, tf.cast(frames - crop, tf.float32), count)), tf.int32)
    index = starts[:, None] + tf.range(crop)[None, :]                     # [count, crop]
    crops = tf.transpose(tf.gather(mel, index, axis=2), [0, 2, 1, 3])     # [batch, count, bands, crop]
    scores = tf.cast(score(tf.reshape(crops, [batch * count, bands, crop])), tf.float32)
    return tf.reduce_mean(tf.reshape(scores, [batch, count, scores.shape[-1]]), axis=1)


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


def _check_positive(**values):
    for key, value in values.items():
        if int(value) < 1:
            raise ValueError(f"`{key}` must be >= 1. Received: {value}")


# === CLI ===

def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfmood.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved Keras model (.keras)")
    parser.add_argument("--name", required=True, help="model name in the serving URL /v1/models/NAME")
    parser.add_argument("--thresholds", help="tag<TAB>threshold TSV to ship as assets/thresholds.tsv")
    parser.add_argument("--version", type=int, help="version number (default: highest existing + 1)")
    parser.add_argument("--out", default="saved_models", help="base directory (default: saved_models)")
    parser.add_argument("--crop-frames", type=int, default=CROP_FRAMES, help="waveform signature crop length")
    parser.add_argument("--segments", type=int, default=SEGMENTS, help="waveform signature crops per clip")
    parser.add_argument("--models-config", action="store_true",
                        help="also (re)write OUT/models.config listing every model folder in OUT")
    parser.add_argument("--model-root", help="base_path prefix in models.config, e.g. /models inside Docker "
                                             "(default: absolute local paths)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import tfmood.models  # noqa: F401  (registers tfmood's custom layers for deserialisation)
    model = keras.saving.load_model(args.model, compile=False)
    path = export_model(model, args.name, args.out, args.thresholds, args.version,
                        crop_frames=args.crop_frames, segments=args.segments)
    print(path)
    if args.models_config:
        names = sorted(p.name for p in Path(args.out).iterdir() if p.is_dir() and next_version(p) > 1)
        print(write_models_config(args.out, names, model_root=args.model_root))
    return path


if __name__ == "__main__":
    main()
