"""Feature kinds that `tools/convert.py` accepts, each a loader from an MTG-layout file to `[bands, frames]`.

A registry, not an if/elif chain: adding a kind is adding a function. Every loader raises
`BadTrack(reason)` for input that must not become a record; the converter reports it with the file.
"""

import os

import numpy as np

from tfmood.registry import Registry

FEATURE_KINDS = Registry("feature kind")


class BadTrack(ValueError):
    """A track whose features cannot be converted; the message is the reason."""


def validate(array: np.ndarray, bands: int) -> np.ndarray:
    """Shared checks: 2-D `[bands, frames]`, the expected band count, at least one frame, all finite."""
    if array.ndim != 2:
        raise BadTrack(f"expected a 2-D array [bands, frames], got shape {array.shape}")
    if array.shape[0] != bands:
        raise BadTrack(f"wrong band count: expected {bands}, got {array.shape[0]} (shape {array.shape})")
    if array.shape[1] == 0:
        raise BadTrack("zero frames")
    if not np.issubdtype(array.dtype, np.floating):
        raise BadTrack(f"expected floating-point features, got dtype {array.dtype}")
    bad = ~np.isfinite(array)
    if bad.any():
        raise BadTrack(f"{int(bad.sum())} non-finite values (NaN or inf)")
    return np.asarray(array, np.float32)


def _load_npy(path: str) -> np.ndarray:
    if not os.path.exists(path):
        raise BadTrack("missing file")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy raises ValueError, OSError, EOFError... for damaged files
        raise BadTrack(f"unreadable npy ({type(e).__name__}: {e})") from None
    if not isinstance(array, np.ndarray):  # np.load opens an .npz archive (zip magic) whatever the name says
        array.close()
        raise BadTrack("unreadable npy: the file is an .npz archive (np.savez), not a single .npy array")
    return array


@FEATURE_KINDS.register("mel")
def load_mel(path: str, bands: int = 96) -> np.ndarray:
    """MTG's distributed mel-spectrograms: `NN/ID.npy`, float32 (96, frames), 20*log10 scale."""
    return validate(_load_npy(path), bands)


@FEATURE_KINDS.register("wavenet")
def load_wavenet(path: str, bands: int = 16) -> np.ndarray:
    """NSynth WaveNet-encoder features: (16, frames), or HCMUS's stored layout (1, frames, 16)."""
    array = _load_npy(path)
    if array.ndim == 3 and array.shape[0] == 1 and array.shape[2] == bands:
        array = array[0].T
    return validate(array, bands)


def _from_audio(path: str, bands: int, to_features) -> np.ndarray:
    """Decode raw audio (mp3, ogg, flac, wav) and run `to_features(path)`; decoding errors are BadTracks."""
    from tfmood import audio  # lazy: librosa is slow to import

    if not os.path.exists(path):
        raise BadTrack("missing file")
    try:
        features = to_features(path)
    except (audio.AudioError, ValueError) as e:  # undecodable, or too short for the frontend
        raise BadTrack(str(e)) from None
    return validate(features, bands)


@FEATURE_KINDS.register("audio")
def load_audio_features(path: str, bands: int = 96) -> np.ndarray:
    """Raw audio through tfmood's MTG mel frontend (12 kHz, 96 bands: MTG's distributed .npy)."""
    from tfmood import frontend

    return _from_audio(path, bands, frontend.audio_to_mel)


@FEATURE_KINDS.register("audio-cpjku")
def load_cpjku_features(path: str, bands: int = 256) -> np.ndarray:
    """Raw audio through CP-JKU's input (tfmood.cpjku_frontend): 44.1 kHz, 2048 window, hop 512, A-weighted
    dB, 256 bands — the input of CP-JKU's MediaEval runs 1-3."""
    from tfmood import cpjku_frontend

    return _from_audio(path, bands, cpjku_frontend.audio_to_cpjku)


@FEATURE_KINDS.register("audio-cpjku-hop1536")
def load_cpjku_hop1536_features(path: str, bands: int = 256) -> np.ndarray:
    """As `audio-cpjku` with hop 1536 (25% overlap): the input of CP-JKU's runs 4-5 (CRNN, ResNet34)."""
    from tfmood import cpjku_frontend

    return _from_audio(path, bands, lambda p: cpjku_frontend.audio_to_cpjku(p, hop=1536))


AUDIO_KINDS = ("audio", "audio-cpjku", "audio-cpjku-hop1536")
FEATURE_SUFFIX = {"mel": ".npy", "wavenet": ".npy", **{k: None for k in AUDIO_KINDS}}  # None: PATH's extension
DEFAULT_BANDS = {"mel": 96, "wavenet": 16, "audio": 96, "audio-cpjku": 256, "audio-cpjku-hop1536": 256}
