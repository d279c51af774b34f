"""MTG-Jamendo's log-mel frontend, in numpy (offline features) and in TensorFlow (serving graphs).

    from tfmood.frontend import audio_to_mel, log_mel_numpy, log_mel_tf
    mel = audio_to_mel("track.mp3")                 # (96, frames) float32, like MTG's NN/ID.npy
    mel = log_mel_numpy(waveform_12k)               # same, from a 12 kHz waveform
    mel = log_mel_tf(tf.constant(batch_12k))        # [batch, 96, frames], graph-safe

The recipe is MTG's `scripts/melspectrograms.py` (Essentia), reproduced op for op:
1. 12 kHz mono; frames of 512 samples every 256, the first centred on sample 0 (Essentia's
   FrameGenerator(startFromZero=False)): frame k covers samples [256k - 256, 256k + 256), zeros outside
   the signal, and frames continue while their start is before the end, so n_frames = ceil(N/256) + 1.
   Decoding and resampling (tfmood.audio, `resampler="mtg"`) reproduce Essentia's MonoLoader(resampleQuality=4).
2. Symmetric Hann window (Essentia's Windowing('hann', normalized=False) is numpy.hanning(512); its
   zero-phase rotation does not change magnitudes), |512-point FFT| -> 257 bins.
3. 96 Slaney mel bands, 0-6000 Hz, unit-area (Slaney-normalised) triangles applied to the *power* spectrum.
   librosa.filters.mel gives Essentia's MelBands matrix to float32 precision (relative 3e-5).
4. Essentia's lin2db with scale 2: 20*log10(max(power, 1e-10)), i.e. floor -200.
Agreement with Essentia on identical samples is measured in tests/test_frontend.py.
"""

import functools

import numpy as np

SAMPLE_RATE = 12000
N_BANDS = 96
FRAME_LENGTH = 512
HOP_LENGTH = 256
N_FFT = 512
F_MIN = 0.0
F_MAX = 6000.0
POWER_FLOOR = 1e-10
DB_SCALE = 20.0  # Essentia's lin2db (10*log10) with scale=2
_BLOCK_FRAMES = 4096  # frames per numpy block (~16 MB each): bounds memory on hour-long tracks


@functools.lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """The (96, 257) float64 Slaney mel matrix that Essentia's MelBands applies to the power spectrum."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_BANDS, fmin=F_MIN, fmax=F_MAX,
                               htk=False, norm="slaney", dtype=np.float64)


def num_frames(num_samples: int) -> int:
    """Frames Essentia's FrameGenerator(frameSize=512, hopSize=256, startFromZero=False) yields: ceil(N/256) + 1."""
    return -(-int(num_samples) // HOP_LENGTH) + 1


def log_mel_numpy(waveform) -> np.ndarray:
    """(96, frames) float32 log-mel of a 1-D 12 kHz waveform (at least one sample), MTG's recipe."""
    waveform = np.asarray(waveform, dtype=np.float64)
    if waveform.ndim != 1 or waveform.size == 0:
        raise ValueError(f"`waveform` must be 1-D with at least one sample. Received shape {waveform.shape}")
    frames = num_frames(waveform.size)
    # Frame k is centred on sample 256k: pad 256 zeros in front and up to the end of the last frame.
    padded = np.pad(waveform, (HOP_LENGTH, frames * HOP_LENGTH - waveform.size))
    window = np.hanning(FRAME_LENGTH)
    filterbank = mel_filterbank()
    out = np.empty((N_BANDS, frames), dtype=np.float32)
    for start in range(0, frames, _BLOCK_FRAMES):
        stop = min(start + _BLOCK_FRAMES, frames)
        block = padded[start * HOP_LENGTH: (stop - 1) * HOP_LENGTH + FRAME_LENGTH]
        framed = np.lib.stride_tricks.sliding_window_view(block, FRAME_LENGTH)[::HOP_LENGTH]
        spectrum = np.fft.rfft(framed * window, n=N_FFT, axis=-1)
        power = spectrum.real ** 2 + spectrum.imag ** 2
        out[:, start:stop] = DB_SCALE * np.log10(np.maximum(filterbank @ power.T, POWER_FLOOR))
    return out


def log_mel_tf(waveform):
    """[batch, samples] float32 12 kHz waveforms -> [batch, 96, frames] float32 log-mel (MTG's recipe).

    Core TF ops only (tf.signal, no py_function), so it can sit inside a SavedModel served by TF Serving;
    batch and length may be unknown, and any length >= 1 sample works.
    """
    import tensorflow as tf

    waveform = tf.convert_to_tensor(waveform, dtype=tf.float32)
    num_samples = tf.shape(waveform)[1]
    frames = (num_samples + HOP_LENGTH - 1) // HOP_LENGTH + 1
    padded = tf.pad(waveform, [[0, 0], [HOP_LENGTH, frames * HOP_LENGTH - num_samples]])
    stft = tf.signal.stft(padded, frame_length=FRAME_LENGTH, frame_step=HOP_LENGTH, fft_length=N_FFT,
                          window_fn=functools.partial(tf.signal.hann_window, periodic=False), pad_end=False)
    power = tf.math.square(tf.math.real(stft)) + tf.math.square(tf.math.imag(stft))
    filterbank = tf.constant(mel_filterbank().T, dtype=tf.float32)  # (257, 96)
    mel = tf.einsum("bfk,km->bmf", power, filterbank)
    return (DB_SCALE / np.log(10.0)) * tf.math.log(tf.maximum(mel, POWER_FLOOR))


def audio_to_mel(path, resampler="mtg") -> np.ndarray:
    """Decode `path` (mp3/ogg/flac/wav) to 12 kHz mono and return its (96, frames) float32 log-mel.

    `resampler="mtg"` reproduces MTG's linear resampling (see tfmood.audio), so the result matches MTG's
    distributed .npy for the same decoded audio; pass e.g. "soxr_hq" for a band-limited resampler.
    """
    from tfmood.audio import load_audio

    return log_mel_numpy(load_audio(path, sample_rate=SAMPLE_RATE, resampler=resampler))
