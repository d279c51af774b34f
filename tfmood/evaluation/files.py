"""Atomic file writes: a reader never sees a half-written submission, report or array.

Each writer streams into a temporary file in the destination folder (same filesystem, so the final
`os.replace` is atomic) and renames it over the target only once the content is complete.
"""

import contextlib
import json
import os
import tempfile

import numpy as np


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb"):
    """Open a temporary sibling of `path` for writing; rename it to `path` on success, delete it on error."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def save_npy(path: str, array: np.ndarray) -> None:
    # Through a file object: `np.save(path)` would append `.npy` to the temporary name.
    with atomic_open(path, "wb") as f:
        np.save(f, array)


def save_text(path: str, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def save_json(path: str, obj) -> None:
    save_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
