"""Decoding audio files to the mono 12 kHz waveform the MTG frontend expects.

    from tfmood.audio import load_audio
    y = load_audio("track.mp3")            # float32, mono, 12 kHz

Decoding goes through librosa (soundfile/libsndfile 1.1+ reads mp3, ogg, flac and wav). Channels are
averaged, like Essentia's MonoLoader. Resampling uses librosa's default (soxr "hq"); MTG's own features
used Essentia's MonoLoader with `resampleQuality=4` (libsamplerate's linear interpolator), so spectra of
resampled audio differ slightly from MTG's .npy files above a few kHz. Audio already at 12 kHz is not
resampled and matches MTG exactly (see tests/test_frontend.py).
"""

import os
import warnings

import numpy as np

AUDIO_EXTENSIONS = (".mp3", ".ogg", ".flac", ".wav")


class AudioError(ValueError):
    """An audio file could not be decoded, or decoded to no samples."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = str(reason)
        super().__init__(f"Cannot read audio file {self.path}: {self.reason}")


def load_audio(path, sample_rate: int = 12000) -> np.ndarray:
    """Decode `path` to a float32 1-D mono waveform at `sample_rate` Hz.

    Raises `AudioError` (a ValueError) naming the file when it is missing, unreadable or empty.
    """
    import librosa  # imported lazily: it takes seconds and most of tfmood never decodes audio

    if sample_rate <= 0:
        raise ValueError(f"`sample_rate` must be a positive number of Hz. Received: {sample_rate}")
    if not os.path.isfile(path):
        raise AudioError(path, "no such file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread; the failure itself is reported below.
            warnings.simplefilter("ignore")
            waveform, _ = librosa.load(path, sr=sample_rate, mono=True)
    except Exception as error:  # decoders raise many unrelated types (RuntimeError, EOFError, NoBackendError...)
        detail = str(error).strip() or "format not recognised, or the file is corrupt"
        raise AudioError(path, f"{type(error).__name__}: {detail}") from error
    if waveform.size == 0:
        raise AudioError(path, "it contains no audio samples")
    return np.ascontiguousarray(waveform, dtype=np.float32)


def find_audio_files(paths) -> list:
    """Expand files and directories (walked recursively, sorted) to audio file paths.

    Files given explicitly are kept whatever their extension, so that a bad file is reported, not skipped.
    """
    found = []
    for path in paths:
        path = str(path)
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(AUDIO_EXTENSIONS)]
        else:
            found.append(path)
    return found
