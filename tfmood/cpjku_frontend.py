"""CP-JKU's input features (MediaEval 2019, Koutini et al.): perceptually weighted 256-band "mel" spectrograms.

    from tfmood.cpjku_frontend import cpjku_spectrogram, audio_to_cpjku
    spec = audio_to_cpjku("track.mp3")               # (256, frames) float32, 44.1 kHz, hop 512 (runs 1-3)
    spec = audio_to_cpjku("track.mp3", hop=1536)     # runs 4-5 (25% overlap)
    spec = cpjku_spectrogram(waveform, sample_rate=22050)   # what the public code's processor computes

The recipe is CP-JKU's `audioprocessors.processor_d18` (kkoutini/cpjku_dcase19), which ran librosa; the paper
(CEUR Vol-2670 paper 34) fixes 44.1 kHz, window 2048, hop 512 (runs 1-3) or 1536 (runs 4-5), 256 bins. Step by step:

1. Mono audio at `sample_rate` (44.1 kHz by default; the public code loads at 22.05 kHz).
2. STFT: n_fft 2048 with a periodic Hann window, frames centred on multiples of `hop` (the signal is
   reflect-padded by n_fft/2 on both sides), 1025 bins. Power = |STFT|^2.
3. Perceptual weighting: 10*log10(max(power, 1e-10)) plus the A-weighting curve (IEC 61672, floored at
   -80 dB) of each bin's frequency, then clipped from below at the *whole track's* maximum minus 80 dB
   (librosa's `perceptual_weighting(S**2, freqs, ref=1.0, amin=1e-10, top_db=80)`).
4. 256 Slaney mel triangles from 0 Hz to Nyquist, unit area, applied to those **dB** values — CP-JKU
   filters after the log, not before (librosa's `melspectrogram(S=weighted_db, n_mels=256)`).

Written from that description, in numpy; tests/test_cpjku_frontend.py checks it against librosa's own
functions called as CP-JKU called them. Memory is bounded by processing the STFT in blocks.
"""

import functools

import numpy as np

SAMPLE_RATE = 44100
N_FFT = 2048
HOPS = (512, 1536)  # paper: runs 1-3 and runs 4-5
N_BANDS = 256
AMIN = 1e-10
TOP_DB = 80.0
A_WEIGHT_FLOOR_DB = -80.0
_BLOCK_FRAMES = 2048


def a_weighting_db(frequencies) -> np.ndarray:
    """The A-weighting curve in dB (IEC 61672-1, +2.0 dB normalisation at 1 kHz), floored at -80 dB."""
    f2 = np.asarray(frequencies, np.float64) ** 2
    c1, c2, c3, c4 = 12194.217 ** 2, 20.598997 ** 2, 107.65265 ** 2, 737.86223 ** 2
    with np.errstate(divide="ignore"):  # 0 Hz: log10(0) = -inf, then the floor
        gain = 2.0 + 20.0 * (np.log10(c1) + 2 * np.log10(f2) - np.log10(f2 + c1) - np.log10(f2 + c2)
                             - 0.5 * np.log10(f2 + c3) - 0.5 * np.log10(f2 + c4))
    return np.maximum(gain, A_WEIGHT_FLOOR_DB)


@functools.lru_cache(maxsize=4)
def filterbank(sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(256, 1025) Slaney mel matrix, 0 Hz to Nyquist (librosa's filters.mel, as CP-JKU used it)."""
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=N_FFT, n_mels=N_BANDS, fmin=0.0, fmax=None,
                               htk=False, norm="slaney", dtype=np.float64)


def num_frames(num_samples: int, hop: int) -> int:
    """Centred frames: one every `hop` samples from sample 0 to the last, 1 + N // hop."""
    return 1 + int(num_samples) // hop


def cpjku_spectrogram(waveform, sample_rate: int = SAMPLE_RATE, hop: int = 512) -> np.ndarray:
    """(256, frames) float32 CP-JKU features of a 1-D waveform sampled at `sample_rate`."""
    waveform = np.asarray(waveform, np.float64)
    if waveform.ndim != 1 or waveform.size == 0:
        raise ValueError(f"`waveform` must be 1-D with at least one sample. Received shape {waveform.shape}")
    if hop < 1:
        raise ValueError(f"`hop` must be a positive number of samples. Received: {hop}")
    pad = N_FFT // 2
    if waveform.size <= pad:  # numpy's reflect padding needs more samples than it reflects
        raise ValueError(f"the clip is too short for CP-JKU's centred 2048-point STFT: {waveform.size} "
                         f"samples, at least {pad + 1} needed ({(pad + 1) / sample_rate:.3f} s)")
    padded = np.pad(waveform, pad, mode="reflect")
    frames = num_frames(waveform.size, hop)
    window = np.hanning(N_FFT + 1)[:-1]  # periodic Hann (scipy's get_window('hann', fftbins=True))
    weights = a_weighting_db(np.fft.rfftfreq(N_FFT, 1.0 / sample_rate))[:, None]
    db = np.empty((N_FFT // 2 + 1, frames), np.float64)
    for start in range(0, frames, _BLOCK_FRAMES):
        stop = min(start + _BLOCK_FRAMES, frames)
        block = padded[start * hop: (stop - 1) * hop + N_FFT]
        framed = np.lib.stride_tricks.sliding_window_view(block, N_FFT)[::hop]
        spectrum = np.fft.rfft(framed * window, axis=-1).T
        power = spectrum.real ** 2 + spectrum.imag ** 2
        db[:, start:stop] = 10.0 * np.log10(np.maximum(power, AMIN))
    # The 80 dB range is relative to the loudest bin of the whole track (so after all blocks), and is
    # applied before the A-weights are added (as librosa's power_to_db inside perceptual_weighting).
    np.maximum(db, db.max() - TOP_DB, out=db)
    return (filterbank(sample_rate) @ (db + weights)).astype(np.float32)


def audio_to_cpjku(path, sample_rate: int = SAMPLE_RATE, hop: int = 512) -> np.ndarray:
    """Decode `path` (mp3/ogg/flac/wav) to mono at `sample_rate` and return its (256, frames) features."""
    from tfmood.audio import load_audio

    return cpjku_spectrogram(load_audio(path, sample_rate=sample_rate), sample_rate, hop)
