"""The ready tagger: MTG's published VGG-ish baseline, downloaded on first use, checked, imported, cached.

    from tfmood.pretrained import default_model
    path = default_model()     # ~/.cache/tfmood/models/mtg-vggish (a versioned SavedModel folder)

`python -m tfmood.predict song.mp3` without `--model` uses it. The weights are MTG's
(MTG/mtg-jamendo-dataset, scripts/baseline/models/best_model.pth, Apache-2.0), fetched from the commit
pinned in BASELINE_URL and accepted only with the SHA-256 below; they are read without executing pickled
code and ported by tfmood.mtg_baseline (what tools/import_mtg_baseline.py does), then exported with
tfmood.export (scoring protocol included) into the cache. Nothing is downloaded once the cache holds it.

Environment: `TFMOOD_CACHE` (default ~/.cache/tfmood) moves the cache; `TFMOOD_BASELINE_URL` fetches the
same file from elsewhere (a mirror; the tests' local server), the checksum still applies.
"""

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

BASELINE_URL = ("https://raw.githubusercontent.com/MTG/mtg-jamendo-dataset/"
                "ab2cc39cf1f0d6b622e676a14096706a1b24915e/scripts/baseline/models/best_model.pth")
BASELINE_SHA256 = "c1d6bee6bc25d78b28cea52bde68a353b3e674687171a78af020fa039d3cbdbe"
BASELINE_FILE = "mtg-vggish-best_model.pth"
MODEL_NAME = "mtg-vggish"
CACHE_ENV = "TFMOOD_CACHE"
URL_ENV = "TFMOOD_BASELINE_URL"
MAX_BYTES = 64 << 20  # the file is 1.8 MB: anything far larger is not it, stop reading
TIMEOUT_S = 60


class PretrainedError(RuntimeError):
    """The default model could not be obtained; the message says why and what to do instead."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tfmood")


def default_model() -> Path:
    """The cached SavedModel folder of MTG's baseline, fetched and imported first if needed."""
    base = cache_dir() / "models" / MODEL_NAME
    ready = _ready_version(base)
    if ready is not None:
        return base
    checkpoint = fetch_checkpoint()
    print(f"Importing MTG's VGG-ish baseline into {base} (first use only)...", file=sys.stderr, flush=True)
    from tfmood.export import export_model
    from tfmood.mtg_baseline import load_mtg_vggish

    try:
        export_model(load_mtg_vggish(str(checkpoint)), MODEL_NAME, base_dir=str(base.parent), warmup=False)
    except FileExistsError:  # another process imported it at the same time: use theirs
        if _ready_version(base) is None:
            raise
    return base


def _ready_version(base: Path):
    """The highest version under `base` written with a scoring protocol (older caches are re-imported)."""
    from tfmood.exported import read_info

    versions = sorted((int(p.name) for p in base.iterdir() if p.name.isdigit()), reverse=True) \
        if base.is_dir() else []
    for version in versions:
        path = base / str(version)
        try:
            if (path / "saved_model.pb").is_file() and read_info(path)["protocol"] is not None:
                return path
        except ValueError:
            continue
    return None


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_checkpoint(url=None, sha256=BASELINE_SHA256) -> Path:
    """`cache_dir()/downloads/BASELINE_FILE`, downloaded from `url` (default: $TFMOOD_BASELINE_URL, else
    BASELINE_URL) unless a file with the right checksum is already there. The download goes to a temporary
    name, is checked, then renamed: a failed or mismatching download leaves no file behind."""
    target = cache_dir() / "downloads" / BASELINE_FILE
    if target.is_file() and sha256_of(target) == sha256:
        return target
    url = url or os.environ.get(URL_ENV) or BASELINE_URL
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    print(f"Downloading MTG's VGG-ish baseline (Apache-2.0) from {url} (first use only)...", file=sys.stderr,
          flush=True)
    try:
        digest = _download(url, tmp)
        if digest != sha256:
            raise PretrainedError(
                f"The file downloaded from {url} has SHA-256 {digest}, expected {sha256}: it is not MTG's "
                f"baseline (or it was corrupted on the way). Nothing was cached; check {URL_ENV} if set.")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def _download(url, path) -> str:
    """Stream `url` into `path`; return its SHA-256. Network failures become PretrainedError with the
    manual alternative."""
    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(path, "wb") as f:
            for block in iter(lambda: response.read(1 << 16), b""):
                size += len(block)
                if size > MAX_BYTES:
                    raise PretrainedError(f"{url} sends more than {MAX_BYTES >> 20} MiB: not MTG's 1.8 MB "
                                          "baseline file. Nothing was cached.")
                digest.update(block)
                f.write(block)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise PretrainedError(_offline_message(url, reason)) from None
    return digest.hexdigest()


def _offline_message(url, reason) -> str:
    target = cache_dir() / "downloads" / BASELINE_FILE
    return (f"Could not download MTG's VGG-ish baseline from {url} ({reason}).\n"
            "Without network access, get `scripts/baseline/models/best_model.pth` of "
            "https://github.com/MTG/mtg-jamendo-dataset on another machine, then either\n"
            f"  - copy it to {target} (it is checked against SHA-256 {BASELINE_SHA256}), or\n"
            "  - run `python tools/import_mtg_baseline.py best_model.pth --out saved_models` and pass "
            "`--model saved_models/mtg-vggish`.")
