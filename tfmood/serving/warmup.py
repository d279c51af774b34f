"""TF Serving warm-up records: `assets.extra/tf_serving_warmup_requests`, a TFRecord of `PredictionLog`s.

With `--enable_model_warmup`, TF Serving replays them before it marks a version AVAILABLE, so the first real
request does not pay for graph optimisation. Writing them needs the optional `tensorflow-serving-api` package.
"""

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)

WARMUP_FILE = "tf_serving_warmup_requests"
WARMUP_SECONDS = 1.0  # waveform warm-up length; short keeps the record small, the graph is the same


def warmup_inputs(signatures, bands, crop_frames, sample_rate=12000):
    """{signature: {input: array}}: one zero example per signature, mel at the crop length."""
    mel = {"mel": np.zeros([1, bands, crop_frames], np.float32)}
    inputs = {"serving_default": mel, "serve_raw": mel}
    if "serve_waveform" in signatures:
        inputs["serve_waveform"] = {"waveform": np.zeros([1, int(WARMUP_SECONDS * sample_rate)], np.float32)}
    return {key: value for key, value in inputs.items() if key in signatures}


def write_warmup_requests(savedmodel_dir, name, signatures, bands, crop_frames, sample_rate=12000):
    """Write the warm-up file into `savedmodel_dir/assets.extra/`; returns its path, or None (logged) without
    `tensorflow-serving-api`."""
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError:
        log.warning("No TF Serving warm-up file: `pip install tensorflow-serving-api` to write one.")
        return None
    path = Path(savedmodel_dir) / "assets.extra" / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, tensors in warmup_inputs(signatures, bands, crop_frames, sample_rate).items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=name, signature_name=signature))
            for key, value in tensors.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            record = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(record.SerializeToString())
    return str(path)
