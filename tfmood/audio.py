"""Decoding audio files to the mono 12 kHz waveform the MTG frontend expects.

    from tfmood.audio import load_audio
    y = load_audio("track.mp3")            # float32, mono, 12 kHz

Decoding goes through soundfile (libsndfile 1.1+ reads mp3, ogg, flac and wav), then librosa's other
decoders (audioread) for anything libsndfile cannot read. Channels are
averaged, like Essentia's MonoLoader. Two resamplers:

- `resampler="mtg"`: what MTG's features used, Essentia's MonoLoader(resampleQuality=4), i.e. libsamplerate's
  linear interpolator, reproduced to float32 precision. It aliases everything above 6 kHz into the mel
  range (several dB in the upper bands of bright audio), but models trained on MTG's distributed .npy
  spectrograms learnt exactly that, so `tfmood.frontend.audio_to_mel` uses it.
- any librosa `res_type` (default "soxr_hq"): a proper band-limited resampler, the generic choice.

Audio already at the target rate is not resampled.
"""

import math
import os
import warnings
from fractions import Fraction

import numpy as np

AUDIO_EXTENSIONS = (".mp3", ".ogg", ".flac", ".wav")


class AudioError(ValueError):
    """An audio file could not be decoded, or decoded to no samples."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = str(reason)
        super().__init__(f"Cannot read audio file {self.path}: {self.reason}")


def load_audio(path, sample_rate: int = 12000, resampler: str = "soxr_hq") -> np.ndarray:
    """Decode `path` to a float32 1-D mono waveform at `sample_rate` Hz.

    `resampler`: "mtg" (MTG's linear interpolation, see the module docstring) or a librosa `res_type`.

    Raises `AudioError` (a ValueError) naming the file when it is missing, unreadable or empty.
    """
    if sample_rate <= 0:
        raise ValueError(f"`sample_rate` must be a positive number of Hz. Received: {sample_rate}")
    if not os.path.isfile(path):
        raise AudioError(path, "no such file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "the file is empty (0 bytes)")
    try:
        waveform, native_rate = _decode_soundfile(path)
    except Exception:  # not a libsndfile format: librosa's other decoders (audioread) may still read it
        try:
            import librosa  # imported lazily: it takes seconds (scipy, numba) and is rarely needed here

            with warnings.catch_warnings():
                # librosa warns before falling back to audioread; the failure itself is reported below.
                warnings.simplefilter("ignore")
                waveform, native_rate = librosa.load(path, sr=None, mono=True)
        except Exception as error:  # decoders raise many unrelated types (RuntimeError, EOFError...)
            detail = str(error).strip() or "format not recognised, or the file is corrupt"
            raise AudioError(path, f"{type(error).__name__}: {detail}") from error
    if waveform.size == 0:
        raise AudioError(path, "it contains no audio samples")
    if native_rate != sample_rate:
        waveform = resample(waveform, native_rate, sample_rate, resampler)
    return np.ascontiguousarray(waveform, dtype=np.float32)


def _decode_soundfile(path):
    """libsndfile (1.1+: mp3, ogg, flac, wav) directly, channels averaged: what librosa.load(sr=None,
    mono=True) does first, without paying librosa's import (seconds) on every `python -m tfmood.predict`."""
    import soundfile

    with soundfile.SoundFile(path) as f:
        data = f.read(dtype="float32", always_2d=True)
        rate = f.samplerate
    return (data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)), rate


def resample(waveform, orig_rate, target_rate, resampler="soxr_hq"):
    """Resample a 1-D waveform: `resampler` "mtg" (Essentia/libsamplerate linear) or a librosa `res_type`."""
    if resampler == "mtg":
        return linear_resample(waveform, orig_rate, target_rate)
    import librosa

    return librosa.resample(waveform, orig_sr=orig_rate, target_sr=target_rate, res_type=resampler)


def linear_resample(waveform, orig_rate, target_rate, block=1 << 20):
    """libsamplerate's SRC_LINEAR as Essentia's Resample drives it (quality 4), reproduced in numpy.

    Essentia hands libsamplerate the ratio as float32; the converter lags one input sample (output j is the
    input interpolated at j*step - 1, the sample before the first being the first) and stops before the last.
    """
    waveform = np.asarray(waveform, dtype=np.float64)
    step = 1.0 / float(np.float32(np.float32(target_rate) / np.float32(orig_rate)))
    # Outputs continue while j*step < N; exact rationals reproduce libsamplerate's count at exact ties.
    count = math.ceil(Fraction(waveform.size) / Fraction(step))
    out = np.empty(count, dtype=np.float32)
    for start in range(0, count, block):  # blocks bound memory on hour-long tracks
        position = np.clip(np.arange(start, min(start + block, count)) * step - 1.0, 0.0, waveform.size - 1)
        left = np.minimum(position.astype(np.int64), waveform.size - 1)
        right = np.minimum(left + 1, waveform.size - 1)
        frac = position - left
        out[start: start + left.size] = waveform[left] + frac * (waveform[right] - waveform[left])
    return out


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
