"""MTG's log-mel frontend against Essentia (the implementation MTG used), numpy against TF, and decoding."""

import numpy as np
import pytest
import soundfile as sf

from tfmood import frontend
from tfmood.audio import AudioError, find_audio_files, load_audio
from tfmood.frontend import N_BANDS, SAMPLE_RATE, audio_to_mel, log_mel_numpy, log_mel_tf, num_frames


def synthetic_audio(seconds=3.0, rate=SAMPLE_RATE, seed=0):
    """Tones + noise + a chirp, silent first quarter second (to exercise the -200 dB floor)."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 2500 * t) + 0.05 * noise
         + 0.2 * np.sin(2 * np.pi * (100 * t + 500 * t ** 2)))
    y[: rate // 4] = 0.0
    return (0.5 * y).astype(np.float32)


def essentia_mel(waveform):
    """MTG's scripts/melspectrograms.py, op for op, on a 12 kHz waveform."""
    es = pytest.importorskip("essentia.standard")
    window = es.Windowing(type="hann", normalized=False)
    spectrum = es.Spectrum()
    mel = es.MelBands(numberBands=96, lowFrequencyBound=0, highFrequencyBound=6000, warpingFormula="slaneyMel",
                      weighting="linear", normalize="unit_tri", type="power", sampleRate=12000, inputSize=257)
    to_db = es.UnaryOperator(type="lin2db", scale=2)
    frames = es.FrameGenerator(np.asarray(waveform, np.float32), frameSize=512, hopSize=256, startFromZero=False)
    return np.array([to_db(mel(spectrum(window(frame)))) for frame in frames]).T


def assert_matches_essentia(expected, received, median_db, max_db):
    assert received.shape == expected.shape, f"frame counts differ: {received.shape} vs Essentia {expected.shape}"
    above_floor = expected > -199.0
    diff = np.abs(expected - received)[above_floor]
    assert np.median(diff) <= median_db and diff.max() <= max_db, \
        f"median {np.median(diff):.2e} dB, max {diff.max():.2e} dB"


def test_identical_samples_match_essentia():
    y = synthetic_audio()
    # Measured: median 6e-5 dB, max 0.05 dB (Essentia computes in float32, tfmood in float64).
    assert_matches_essentia(essentia_mel(y), log_mel_numpy(y), median_db=1e-3, max_db=0.2)


@pytest.mark.parametrize("length", [1, 2, 255, 256, 257, 511, 512, 513, 3000])
def test_frame_count_matches_essentia(length):
    y = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    assert log_mel_numpy(y).shape == essentia_mel(y).shape == (N_BANDS, num_frames(length))


def test_filterbank_is_essentias_melbands():
    es = pytest.importorskip("essentia.standard")
    bands = es.MelBands(numberBands=96, lowFrequencyBound=0, highFrequencyBound=6000, warpingFormula="slaneyMel",
                        weighting="linear", normalize="unit_tri", type="power", sampleRate=12000, inputSize=257)
    columns = [bands(np.eye(257, dtype=np.float32)[k]) for k in range(257)]  # unit magnitude -> unit power
    expected = np.stack(columns, axis=1)
    np.testing.assert_allclose(frontend.mel_filterbank(), expected, atol=1e-4 * expected.max())


def test_tf_matches_numpy_with_unknown_shapes():
    import tensorflow as tf

    traced = tf.function(log_mel_tf, input_signature=[tf.TensorSpec([None, None], tf.float32)])
    batch = np.stack([synthetic_audio(1.0, seed=1), synthetic_audio(1.0, seed=2)])
    received = traced(batch).numpy()
    for row, waveform in zip(received, batch):
        expected = log_mel_numpy(waveform)
        assert row.shape == expected.shape
        audible = expected > -100.0  # near the floor float32 FFT rounding dominates; compare audible bins
        np.testing.assert_allclose(row[audible], expected[audible], atol=2e-3)
    for length in (1, 256, 257):
        assert traced(np.ones((3, length), np.float32)).shape == (3, N_BANDS, num_frames(length))


@pytest.mark.parametrize("suffix,subtype,median_db,max_db", [
    (".wav", "PCM_16", 1e-3, 0.2), (".flac", "PCM_24", 1e-3, 0.2),
    # Lossy formats: libsndfile (mpg123/vorbis) and Essentia (ffmpeg) decoders differ in the codec noise of
    # near-silent frames, so only the median is tight (measured 3e-3 dB mp3, 7e-5 dB ogg).
    (".mp3", None, 0.05, np.inf), (".ogg", None, 0.05, np.inf)])
def test_decoded_files_match_essentia_monoloader(tmp_path, suffix, subtype, median_db, max_db):
    es = pytest.importorskip("essentia.standard")
    path = str(tmp_path / f"clip{suffix}")
    sf.write(path, synthetic_audio(2.0), SAMPLE_RATE, subtype=subtype)
    expected = essentia_mel(es.MonoLoader(filename=path, sampleRate=12000, resampleQuality=4)())
    assert_matches_essentia(expected, audio_to_mel(path), median_db=median_db, max_db=max_db)


def test_resampling_matches_mtg_monoloader(tmp_path):
    """44.1 kHz stereo: decode + downmix + MTG's linear resampling (resampleQuality=4) reproduced."""
    es = pytest.importorskip("essentia.standard")
    path = str(tmp_path / "clip44k.wav")
    left, right = synthetic_audio(2.0, rate=44100, seed=3), synthetic_audio(2.0, rate=44100, seed=4)
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    loaded = es.MonoLoader(filename=path, sampleRate=12000, resampleQuality=4)()
    ours = load_audio(path, resampler="mtg")
    assert ours.shape == loaded.shape
    np.testing.assert_allclose(ours, loaded, atol=1e-6)
    assert_matches_essentia(essentia_mel(loaded), audio_to_mel(path), median_db=1e-3, max_db=0.2)


def test_bad_files_raise_audio_error_naming_the_file(tmp_path):
    corrupt, empty = tmp_path / "corrupt.mp3", tmp_path / "empty.wav"
    corrupt.write_bytes(b"not audio at all" * 64)
    empty.write_bytes(b"")
    silent = tmp_path / "no_samples.wav"
    sf.write(str(silent), np.zeros(0, np.float32), SAMPLE_RATE)
    for path in (corrupt, empty, silent, tmp_path / "missing.ogg"):
        with pytest.raises(AudioError, match=path.name) as caught:
            load_audio(str(path))
        assert isinstance(caught.value, ValueError) and caught.value.path == str(path)


def test_find_audio_files_walks_directories(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/2.flac", "1.mp3", "notes.txt", "3.WAV"):
        (tmp_path / name).write_bytes(b"")
    assert find_audio_files([tmp_path, "explicit.txt"]) == [
        str(tmp_path / "1.mp3"), str(tmp_path / "3.WAV"), str(tmp_path / "b" / "2.flac"), "explicit.txt"]


def test_numpy_frontend_rejects_empty_input():
    with pytest.raises(ValueError, match="at least one sample"):
        log_mel_numpy(np.zeros(0))
