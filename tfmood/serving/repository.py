"""Versioned SavedModels on disk, loaded and swapped the way TF Serving's file-system source does it.

Each model has a base path holding integer-named version folders (non-numeric names such as the exporter's
`.tmp-*` folders are ignored). `poll()` loads the versions the model's policy wants (default: the newest)
before unloading the ones it no longer wants, so a new export is served without a gap. A version that
fails to load (say, a folder copied into place and seen half-written) is retried at the first poll after its
files change, and otherwise every `load_retry_seconds`, like TF Serving's load retries.
"""

import logging
import os
import re
import threading
import time
from pathlib import Path

import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from tfmood.serving.config import LOAD_RETRY_SECONDS, ModelConfig
from tfmood.serving.errors import HTTP_STATUS, RestError

log = logging.getLogger(__name__)

# TF status code numbers -> names (the keys of HTTP_STATUS).
_CODE_NAMES = {getattr(tf.errors, name): name for name in HTTP_STATUS if hasattr(tf.errors, name)}


class Servable:
    """One version of one model: its state and, once AVAILABLE, its loaded signatures."""

    def __init__(self, name, version, path):
        self.name, self.version, self.path = name, version, Path(path)
        self.state, self.error_code, self.error_message = "START", "OK", ""
        self.attempts = 0
        self.signature_defs = {}
        self._loaded = None
        self._failed_at, self._failed_files = None, None

    def load(self, now=None):
        self.state, self.attempts = "LOADING", self.attempts + 1
        try:
            meta_graph = _serve_meta_graph(self.path / "saved_model.pb")
            self._loaded = tf.saved_model.load(str(self.path), tags=["serve"])
            self.signature_defs = dict(meta_graph.signature_def)
            self.state, self.error_code, self.error_message = "AVAILABLE", "OK", ""
            log.info("Loaded %s version %d from %s", self.name, self.version, self.path)
        except Exception as error:  # any failure leaves the version unservable, reported in its status
            self.state, self.error_code, self.error_message = "END", "UNKNOWN", f"{type(error).__name__}: {error}"
            self._failed_at = time.monotonic() if now is None else now
            self._failed_files = _folder_state(self.path)
            log.error("Failed to load %s version %d (attempt %d; retried when its files change, else every "
                      "%g s): %s", self.name, self.version, self.attempts, LOAD_RETRY_SECONDS, self.error_message)

    def needs_load(self, retry_seconds=LOAD_RETRY_SECONDS, now=None):
        """Never loaded, unloaded but wanted again, or failed and then changed on disk or `retry_seconds` old.

        A folder copied into place (not renamed) is seen half-written; it must load once the copy completes.
        """
        if self.state == "START":
            return True
        if self.state != "END":
            return False
        if self.error_code == "OK":
            return True
        now = time.monotonic() if now is None else now
        return now - self._failed_at >= retry_seconds or _folder_state(self.path) != self._failed_files

    def unload(self):
        self._loaded, self.state = None, "END"
        log.info("Unloaded %s version %d", self.name, self.version)

    def input_dtypes(self, signature):
        """{input name: numpy dtype} of a signature (RestError if it does not exist)."""
        if signature not in self.signature_defs:
            raise RestError.invalid(f'Serving signature name: "{signature}" not found in signature def')
        inputs = self.signature_defs[signature].inputs
        return {key: tf.dtypes.as_dtype(info.dtype).as_numpy_dtype for key, info in inputs.items()}

    def predict(self, signature, tensors):
        """{output alias: numpy array} for {input name: array}; TF errors keep their status code."""
        loaded = self._loaded  # a reference keeps the model alive if a poll unloads it mid-request
        if loaded is None:
            raise RestError.not_found(f"Servable not found for request: Specific({self.name}, {self.version})")
        function = loaded.signatures[signature]
        for key, value in tensors.items():
            _check_shape(key, value.shape, self.signature_defs[signature].inputs[key].tensor_shape)
        try:
            outputs = function(**{key: tf.constant(value) for key, value in tensors.items()})
        except tf.errors.OpError as error:
            raise RestError(_CODE_NAMES.get(error.error_code, "UNKNOWN"), _op_message(error.message)) from None
        except (TypeError, ValueError) as error:  # tf.function refuses the shapes/dtypes before running
            raise RestError.invalid(str(error).strip()) from None
        return {alias: value.numpy() for alias, value in outputs.items()}

    def status(self):
        return {"version": str(self.version), "state": self.state,
                "status": {"error_code": self.error_code, "error_message": self.error_message}}

    def metadata(self):
        return {key: json_format.MessageToDict(value, preserving_proto_field_name=True,
                                               always_print_fields_with_no_presence=True)
                for key, value in self.signature_defs.items()}


class Repository:
    """The served models, by name; thread-safe for concurrent requests while a poller swaps versions."""

    def __init__(self, configs, load_retry_seconds=LOAD_RETRY_SECONDS):
        configs = list(configs)
        self.load_retry_seconds = float(load_retry_seconds)
        if not configs:
            raise ValueError("Repository needs at least one model config. Received none.")
        self.configs = {config.name: config for config in configs}
        self.servables = {config.name: {} for config in configs}  # name -> {version: Servable}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @classmethod
    def single(cls, base_path, name=None, **kwargs):
        base_path = Path(base_path).resolve()
        return cls([ModelConfig(name=name or base_path.name, base_path=str(base_path))], **kwargs)

    # === Polling ===

    def poll(self):
        """Load newly wanted versions, then unload the ones no longer wanted."""
        for name, config in self.configs.items():
            wanted = config.wanted(_version_folders(config.base_path))
            servables = self.servables[name]
            for version in wanted:
                if version not in servables:
                    with self._lock:  # listed as START/LOADING in the status while it loads
                        servables[version] = Servable(name, version, Path(config.base_path) / str(version))
                if servables[version].needs_load(self.load_retry_seconds):
                    servables[version].load()
            # Like TF Serving's availability-preserving policy: drop old versions once a new one serves.
            ready = not wanted or any(servables[v].state == "AVAILABLE" for v in wanted)
            for version, servable in list(servables.items()):
                if ready and version not in wanted and servable.state == "AVAILABLE":
                    with self._lock:
                        servable.unload()

    def start_polling(self, seconds):
        """Poll every `seconds` in a daemon thread (TF Serving's --file_system_poll_wait_seconds)."""
        def loop():
            while not self._stop.wait(seconds):
                try:
                    self.poll()
                except Exception:  # a bad folder must not stop the poller; it is logged and retried
                    log.exception("Polling the model folders failed")

        thread = threading.Thread(target=loop, name="tfmood-model-poller", daemon=True)
        thread.start()
        return thread

    def stop(self):
        self._stop.set()

    # === Lookups ===

    def find(self, name, version=None, label=None):
        """The AVAILABLE servable for a request (newest when no version/label), else TF Serving's errors."""
        version = self._resolve_label(name, label) if label is not None else version
        with self._lock:
            servables = self.servables.get(name, {})
            if version is None:
                available = [v for v, s in servables.items() if s.state == "AVAILABLE"]
                if available:
                    return servables[max(available)]
                raise RestError.not_found(f"Servable not found for request: Latest({name})")
            servable = servables.get(version)
            if servable is None or servable.state != "AVAILABLE":
                raise RestError.not_found(f"Servable not found for request: Specific({name}, {version})")
            return servable

    def status(self, name, version=None, label=None):
        """TF Serving's GetModelStatus answer (all known versions, or one)."""
        version = self._resolve_label(name, label) if label is not None else version
        with self._lock:
            servables = self.servables.get(name, {})
            if not servables:
                raise RestError.not_found(f"Could not find any versions of model {name}")
            if version is not None and version not in servables:
                raise RestError.not_found(f"Could not find version {version} of model {name}")
            chosen = [servables[version]] if version is not None else \
                [servables[v] for v in sorted(servables, reverse=True)]
            return {"model_version_status": [s.status() for s in chosen]}

    def _resolve_label(self, name, label):
        labels = self.configs[name].labels if name in self.configs else {}
        if label not in labels:
            raise RestError.invalid(f"Unrecognized servable version label: {label}")
        return labels[label]


def _check_shape(key, shape, expected):
    """TF would run a 95-band mel through a fully convolutional model; refuse shapes the signature excludes."""
    if expected.unknown_rank:
        return
    dims = [d.size for d in expected.dim]
    if len(shape) != len(dims) or any(d >= 0 and d != s for d, s in zip(dims, shape)):
        raise RestError.invalid(f"Input {key} has shape [{','.join(map(str, shape))}] but the signature "
                                f"expects [{','.join(map(str, dims))}] (-1: any size)")


def _op_message(message):
    """A TF runtime error as a client should read it: no Python stack of where the graph was built, no node list.

    Eager calls wrap the status as "Graph execution error: Detected at node N defined at (most recent call
    last): <stack lines> <status message> [[{{node N}}]] [Op:...]"; a tf.debugging assertion's message is the
    first bracket of "assertion failed: [message] [Condition ...]".
    """
    lines = message.strip().splitlines()
    if lines and lines[0].startswith("Graph execution error"):
        start = next((i for i, line in enumerate(lines) if "(most recent call last):" in line), 0) + 1
        lines = [line for line in lines[start:] if line and not line.startswith((" ", "<stack traces"))]
    lines = [line for line in lines if not line.lstrip().startswith("[[{{")] or lines
    text = " ".join(line.strip() for line in lines)
    assertion = re.match(r"assertion failed: \[(.+?)\s*\]", text)
    return assertion.group(1).strip() if assertion else text


def _folder_state(path):
    """(relative path, size, mtime_ns) of every file under a version folder: changes while it is copied."""
    files = []
    for root, _, names in os.walk(path):
        for name in names:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:
                continue
            files.append((os.path.relpath(os.path.join(root, name), path), stat.st_size, stat.st_mtime_ns))
    return sorted(files)


def _version_folders(base_path):
    base = Path(base_path)
    if not base.is_dir():
        return []
    return [int(p.name) for p in base.iterdir() if p.name.isdigit() and p.is_dir()]


def _serve_meta_graph(path):
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(Path(path).read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ValueError(f"{path} has no MetaGraph tagged 'serve'.")
