"""Score a split with a trained model: a `.keras` file or a SavedModel (`saved_models/NAME[/VERSION]`).

The only module of `tfmood.evaluation` that needs TensorFlow; it imports it inside the functions so
evaluating saved predictions never pays TensorFlow's start-up time.
"""

import os

import numpy as np

SAVED_MODEL_FILE = "saved_model.pb"
SIGNATURE = "serving_default"
RAW_SIGNATURE = "serve_raw"  # tfmood.export: the model on the whole input, no protocol crops


def resolve_saved_model(path: str) -> str:
    """`saved_models/NAME/VERSION` as given, or the highest numeric VERSION under `saved_models/NAME`."""
    if os.path.exists(os.path.join(path, SAVED_MODEL_FILE)):
        return path
    versions = [d for d in os.listdir(path) if d.isdigit() and os.path.exists(os.path.join(path, d, SAVED_MODEL_FILE))]
    if not versions:
        raise FileNotFoundError(f"{path} is neither a SavedModel (no {SAVED_MODEL_FILE}) nor a folder of numbered "
                                f"SavedModel versions. Pass a `.keras` file or `saved_models/NAME[/VERSION]`.")
    return os.path.join(path, max(versions, key=int))


class SignatureScorer:
    """Adapts a SavedModel to `predict_tracks`, which calls models on `[n, bands, crop, 1]` crops.

    `protocol`: the export's scoring protocol (tfmood.protocol), None for exports older than it. The crops
    are cut by `predict_tracks` with that protocol, so the model must score each crop as it is: its
    `serve_raw` signature (old exports: `serving_default`, which then scored the whole input).
    """

    def __init__(self, path: str):
        import tensorflow as tf

        from tfmood.exported import read_info

        self.path = resolve_saved_model(path)
        self.protocol = read_info(self.path)["protocol"]
        name = RAW_SIGNATURE if self.protocol is not None else SIGNATURE
        loaded = tf.saved_model.load(self.path)
        if name not in loaded.signatures:
            raise ValueError(f"{self.path} has no {name!r} signature. Found: {sorted(loaded.signatures)}")
        self._loaded = loaded  # keeps the signature's variables alive
        self.name = name
        self.signature = loaded.signatures[name]
        self.output_key = self._pick_output(self.signature.structured_outputs)

    def _pick_output(self, outputs) -> str:
        if "scores" in outputs:
            return "scores"
        floats = [k for k, spec in outputs.items() if spec.dtype.is_floating]
        if len(floats) != 1:
            raise ValueError(f"{self.path}: {self.name} has no 'scores' output and {len(floats)} float outputs "
                             f"({floats}); cannot tell which holds the tag scores.")
        return floats[0]

    def __call__(self, x):
        import tensorflow as tf

        x = tf.convert_to_tensor(x, tf.float32)
        if x.shape.rank == 4:  # [n, bands, crop, 1] -> the signature's [n, bands, time]
            x = tf.squeeze(x, axis=-1)
        return self.signature(mel=x)[self.output_key].numpy()

    predict_on_batch = __call__


def load_scorer(path: str):
    """A Keras model (from `.keras`) or a `SignatureScorer` (SavedModel folder)."""
    if os.path.isdir(path):
        return SignatureScorer(path)
    if not path.endswith(".keras"):
        raise ValueError(f"--model must be a `.keras` file or a SavedModel folder. Received: {path!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model file {path!r} not found.")
    import keras

    import tfmood.models  # noqa: F401  registers tfmood's custom layers before deserialising
    return keras.models.load_model(path, compile=False)


def scorer_protocol(scorer, path: str, crop_frames=None, segments=None):
    """The protocol to score `scorer` with: an export's own (a conflicting `crop_frames`/`segments` is an
    error: the model's answer is defined by its protocol), else the one given (defaults 960 and 16)."""
    from tfmood.protocol import Protocol

    own = getattr(scorer, "protocol", None)
    if own is None:
        return Protocol(**{k: int(v) for k, v in (("crop_frames", crop_frames), ("segments", segments))
                           if v is not None})
    for key, value in (("crop_frames", crop_frames), ("segments", segments)):
        if value is not None and int(value) != getattr(own, key):
            raise ValueError(f"{path} was exported with the scoring protocol {own.to_dict()}; "
                             f"{key}={value} disagrees. Omit --{key.replace('_', '-')} to use the model's.")
    return own


def score_split(model_paths, records_dir: str, split: str, crop_frames=None, segments=None,
                batch_size: int = 32) -> tuple:
    """`(track_ids, scores [n, 56] float64, labels [n, 56] bool, protocol)`: scores averaged over all
    `model_paths` (checkpoint snapshots), each model scoring its protocol's crops per track (`predict_tracks`;
    `crop_frames`/`segments` apply to `.keras` models, None meaning 960 and 16)."""
    from tfmood.data.pipeline import predict_tracks
    from tfmood.evaluation.ensemble import average_snapshots

    ids = labels = protocol = None
    all_scores = []
    for path in model_paths:  # one model in memory at a time
        scorer = load_scorer(path)
        model_protocol = scorer_protocol(scorer, path, crop_frames, segments)
        if protocol is not None and model_protocol != protocol:
            raise ValueError(f"{path} scores with the protocol {model_protocol.to_dict()}, {model_paths[0]} "
                             f"with {protocol.to_dict()}: snapshots must share one.")
        protocol = model_protocol
        track_ids, scores, track_labels = predict_tracks(scorer, records_dir, split,
                                                         crop_frames=protocol.crop_frames,
                                                         segments=protocol.segments, batch_size=batch_size)
        if ids is not None and not np.array_equal(ids, track_ids):
            raise ValueError(f"{path} scored different tracks of {split!r} than {model_paths[0]}.")
        ids, labels = track_ids, track_labels
        all_scores.append(scores)
    return ids, average_snapshots(all_scores), labels, protocol
