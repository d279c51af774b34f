"""TF Serving model config files (`--model_config_file`, text-format `ModelServerConfig`).

`write_models_config` writes one for several exported models; `read_models_config` parses one for the local
server (parsing needs the optional `tensorflow-serving-api` package, which holds the protobuf schema).
"""

import dataclasses
import os
from pathlib import Path

CONFIG_FILE = "models.config"
LOAD_RETRY_SECONDS = 60.0  # TF Serving's --load_retry_interval_micros default: a failed version is retried


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One served model: where its versions live and which of them to serve."""

    name: str
    base_path: str
    policy: str = "latest"          # latest | all | specific
    num_versions: int = 1           # for latest
    versions: tuple = ()            # for specific
    labels: dict = dataclasses.field(default_factory=dict)  # label -> version

    def wanted(self, available):
        """The versions of `available` (ints) this policy serves."""
        available = sorted(available)
        if self.policy == "all":
            return available
        if self.policy == "specific":
            return [v for v in available if v in self.versions]
        return available[-self.num_versions:] if self.num_versions > 0 else []


def write_models_config(base_dir, names, model_root=None, path=None):
    """Write `base_dir/models.config` serving every model in `names` (latest version of each).

    `base_path`s are absolute paths of `base_dir/NAME`, or `model_root/NAME` when given (e.g. "/models" for
    the paths inside the TF Serving Docker container). Returns the file's path.
    """
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("write_models_config needs at least one model name. Received none.")
    entries = []
    for name in names:
        base = f"{model_root.rstrip('/')}/{name}" if model_root else str((Path(base_dir) / name).resolve())
        entries.append(f"  config {{\n    name: '{name}'\n    base_path: '{base}'\n"
                       f"    model_platform: 'tensorflow'\n  }}\n")
    path = Path(path) if path else Path(base_dir) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("model_config_list {\n" + "".join(entries) + "}\n")
    os.replace(tmp, path)
    return str(path)


def read_models_config(path):
    """[ModelConfig] from a text ModelServerConfig; relative base paths are taken from the file's folder."""
    try:
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError as error:
        raise ImportError("Reading a models.config needs `pip install tensorflow-serving-api`.") from error
    try:
        message = text_format.Parse(Path(path).read_text(), model_server_config_pb2.ModelServerConfig())
    except (text_format.ParseError, UnicodeDecodeError) as error:  # a sentence naming the file and the line, not a traceback
        raise ValueError(f"{path} is not a valid TF Serving model config (text ModelServerConfig): {error}") \
            from None
    if not message.HasField("model_config_list"):
        raise ValueError(f"{path} has no model_config_list (the only kind the local server supports).")
    return [_model_config(entry, Path(path).resolve().parent) for entry in message.model_config_list.config]


def _model_config(entry, root):
    base = Path(entry.base_path)
    policy = entry.model_version_policy.WhichOneof("policy_choice") or "latest"
    return ModelConfig(
        name=entry.name, base_path=str(base if base.is_absolute() else root / base), policy=policy,
        num_versions=entry.model_version_policy.latest.num_versions or 1,
        versions=tuple(entry.model_version_policy.specific.versions), labels=dict(entry.version_labels))
