"""A plain REST/JSON client for exported taggers, served by TF Serving or `python -m tfmood.serve`.

    from tfmood.serving import Client
    client = Client("http://127.0.0.1:8501", "tagger")
    client.status()                          # {"model_version_status": [...]}
    scores = client.predict_mel(mel)         # mel [96, T] -> [56]; [batch, 96, T] -> [batch, 56]
    scores = client.predict_file("song.mp3") # decode + log-mel here, score the whole clip there
    client.top_tags(scores, 5)               # [("happy", 0.71), ...]

Only the standard REST API is used (columnar `inputs` requests), so it works against real TF Serving too.
"""

import json
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

MEL_SIGNATURE = "serving_default"
WAVEFORM_SIGNATURE = "serve_waveform"
SAMPLE_RATE = 12000


class ServingError(RuntimeError):
    """An error answer from the server: `.status` is the HTTP code, the message is the server's `error`."""

    def __init__(self, status, message):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Client:
    """REST client for one model (and optionally one pinned version) on a TF Serving-compatible server."""

    def __init__(self, url, model, version=None, timeout=60.0):
        if not str(url).startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://. Received {url!r}.")
        if version is not None and (isinstance(version, bool) or int(version) < 0):
            raise ValueError(f"version must be a non-negative integer or None. Received {version!r}.")
        self.url = str(url).rstrip("/")
        self.model = model
        self.version = None if version is None else int(version)
        self.timeout = timeout
        self.tags = None  # tag names, filled from the first prediction's `tags` output

    # === Model status and metadata ===

    def status(self):
        return self._request("GET", self._model_path())

    def metadata(self):
        return self._request("GET", self._model_path() + "/metadata")

    # === Predictions ===

    def predict(self, inputs, signature_name=None):
        """Columnar predict: `inputs` {name: array} -> {output: array} (raw REST, any signature)."""
        body = {"inputs": {key: _json_values(value) for key, value in inputs.items()}}
        if signature_name:
            body["signature_name"] = signature_name
        outputs = self._request("POST", self._model_path() + ":predict", body)["outputs"]
        return outputs if isinstance(outputs, dict) else {"output_0": outputs}

    def predict_mel(self, mel):
        """Scores for a log-mel spectrogram [bands, T] (-> [56]) or a batch [batch, bands, T] (-> [batch, 56])."""
        mel = np.asarray(mel, dtype=np.float32)
        if mel.ndim not in (2, 3):
            raise ValueError(f"mel must be [bands, time] or [batch, bands, time]. Received shape {mel.shape}.")
        return self._scores(self.predict({"mel": mel if mel.ndim == 3 else mel[None]}), single=mel.ndim == 2)

    def predict_waveform(self, waveform):
        """Scores for mono 12 kHz audio [samples] (-> [56]) or equal-length clips [batch, samples]."""
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim not in (1, 2):
            raise ValueError(f"waveform must be [samples] or [batch, samples]. Received shape {waveform.shape}.")
        batch = waveform if waveform.ndim == 2 else waveform[None]
        return self._scores(self.predict({"waveform": batch}, WAVEFORM_SIGNATURE), single=waveform.ndim == 1)

    def predict_file(self, path, signature=MEL_SIGNATURE):
        """Scores [56] for an audio file: the mel signature sends the log-mel (computed here, ~8x smaller than
        the samples), `serve_waveform` sends the samples; the server applies the model's scoring protocol to
        either, so both give `python -m tfmood.predict`'s answer (same decoding and MTG resampling)."""
        from tfmood.audio import load_audio

        waveform = load_audio(path, sample_rate=SAMPLE_RATE, resampler="mtg")
        if signature == WAVEFORM_SIGNATURE:
            return self.predict_waveform(waveform)
        if signature != MEL_SIGNATURE:
            raise ValueError(f"signature must be {MEL_SIGNATURE!r} or {WAVEFORM_SIGNATURE!r}. Received {signature!r}.")
        from tfmood.frontend import log_mel_numpy

        return self.predict_mel(log_mel_numpy(waveform))

    def top_tags(self, scores, k=5):
        """The `k` best (tag, score) pairs of one score vector (tag names come from the server)."""
        scores = np.asarray(scores)
        if scores.ndim != 1:
            raise ValueError(f"top_tags takes one score vector. Received shape {scores.shape}.")
        names = self.tags or [str(i) for i in range(len(scores))]
        return [(names[i], float(scores[i])) for i in np.argsort(-scores, kind="stable")[:k]]

    # === HTTP ===

    def _scores(self, outputs, single):
        if "tags" in outputs and not self.tags and len(outputs["tags"]):
            self.tags = list(outputs["tags"][0])
        scores = np.asarray(outputs["scores"], dtype=np.float32)
        return scores[0] if single else scores

    def _model_path(self):
        path = f"{self.url}/v1/models/{urllib.parse.quote(self.model, safe='')}"
        return path if self.version is None else f"{path}/versions/{self.version}"

    def _request(self, method, url, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise ServingError(error.code, _error_message(error.read())) from None


def _error_message(body):
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")[:500]


def _json_values(array):
    """Nested lists with float32 values written shortest-round-trip (~2x smaller JSON than float64 repr)."""
    array = np.asarray(array)
    if array.dtype.kind == "f":
        array = array.astype(np.float32).astype(str).astype(np.float64)
    return array.tolist()
