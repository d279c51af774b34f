"""Reading an exported model's folder without TensorFlow or Keras: version, tags, thresholds, protocol.

    from tfmood.exported import version_dir, read_info
    path = version_dir("saved_models/tagger")          # saved_models/tagger/<highest version>
    info = read_info(path)                             # tags, thresholds (or None), protocol, signatures

Kept free of heavy imports so `python -m tfmood.predict` can read the assets while TensorFlow loads.
"""

import json
import os
from pathlib import Path

import numpy as np

from tfmood.protocol import Protocol
from tfmood.tags import TAGS

INFO_FILE = "tfmood.json"


def version_dir(model, version=None) -> Path:
    """The SavedModel folder: `model` itself, or its version `version` (default: the highest)."""
    model = Path(model)
    if (model / "saved_model.pb").is_file() and version is None:
        return model
    versions = sorted(int(p.name) for p in model.iterdir() if p.is_dir() and p.name.isdigit()) \
        if model.is_dir() else []
    if not versions:
        raise FileNotFoundError(f"No SavedModel at {model}: expected saved_model.pb or numbered version "
                                "folders (export one with `python -m tfmood.export`).")
    chosen = versions[-1] if version is None else int(version)
    if chosen not in versions:
        raise FileNotFoundError(f"Version {chosen} of {model} does not exist. Available: {versions}")
    return model / str(chosen)


def read_info(path) -> dict:
    """{"tags", "thresholds" (float32 [tags] or None), "protocol" (Protocol or None), "signatures", ...}.

    `protocol` is None for exports written before the protocol was part of the model (their
    `serving_default` scored the whole input).
    """
    assets = Path(path) / "assets"
    info_path = assets / INFO_FILE
    try:
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    except ValueError as error:
        raise ValueError(f"{info_path} is not valid JSON ({error}); re-export the model.") from None
    tags_path = assets / "tags.txt"
    info["tags"] = tuple(tags_path.read_text().split()) if tags_path.is_file() else TAGS
    thresholds_path = assets / "thresholds.tsv"
    info["thresholds"] = threshold_vector(str(thresholds_path), info["tags"]) if thresholds_path.is_file() \
        else None
    info["protocol"] = Protocol.from_dict(info["protocol"], str(info_path)) if "protocol" in info else None
    return info


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
