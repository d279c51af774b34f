"""CP-JKU's perceptually weighted 256-band input (tfmood.cpjku_frontend) against librosa, which CP-JKU ran."""

import numpy as np
import pytest

from tfmood import cpjku_frontend as cf

librosa = pytest.importorskip("librosa")


def cpjku_with_librosa(y, sr, hop):
    """CP-JKU's processor_d18 (kkoutini/cpjku_dcase19 audioprocessors.py) as a chain of librosa calls."""
    stft = librosa.stft(y, n_fft=2048, hop_length=hop, window="hann", center=True, pad_mode="reflect")
    freqs = librosa.fft_frequencies(sr=sr, n_fft=2048)
    weighted = librosa.perceptual_weighting(np.abs(stft) ** 2, freqs, ref=1.0, amin=1e-10, top_db=80)
    return librosa.feature.melspectrogram(S=weighted, sr=sr, n_mels=256, fmax=None)


def music(seconds, sr, seed=0):
    """Tones with vibrato, a decaying click train and faint noise: loud and near-silent bins both occur."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.4 * np.sin(2 * np.pi * (440 + 5 * np.sin(2 * np.pi * 3 * t)) * t) + 0.2 * np.sin(2 * np.pi * 3300 * t)
    y += 0.5 * (np.mod(t, 0.25) < 0.002) + 1e-4 * rng.standard_normal(t.size)
    y[: sr // 10] = 0.0  # digital silence: exercises the amin floor and the whole-track top_db clip
    return y.astype(np.float32)


@pytest.mark.parametrize("sr, hop", [(44100, 512), (44100, 1536), (22050, 512)])
def test_matches_librosa_as_cpjku_called_it(sr, hop):
    y = music(1.3, sr)
    ours = cf.cpjku_spectrogram(y, sample_rate=sr, hop=hop)
    ref = librosa_ref = cpjku_with_librosa(y.astype(np.float64), sr, hop)
    assert ours.shape == ref.shape == (256, 1 + len(y) // hop)
    scale = np.abs(librosa_ref).max()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4 * scale)


def test_top_db_is_relative_to_the_whole_track_not_a_block(monkeypatch):
    """A loud burst at the end sets the 80 dB floor of a quiet beginning, even across STFT blocks."""
    sr = 22050
    y = 1e-3 * music(3.0, sr, seed=1)
    y[-(sr // 4):] += np.sin(2 * np.pi * 1000 * np.arange(sr // 4) / sr).astype(np.float32)
    monkeypatch.setattr(cf, "_BLOCK_FRAMES", 16)  # many blocks: the burst lies in the last one
    np.testing.assert_allclose(cf.cpjku_spectrogram(y, sr, 512), cpjku_with_librosa(y.astype(np.float64), sr, 512),
                               rtol=0, atol=1e-4 * 2000)


def test_a_weighting_is_zero_near_1khz_and_floored():
    np.testing.assert_allclose(cf.a_weighting_db([1000.0]), [0.0], atol=0.01)
    np.testing.assert_allclose(cf.a_weighting_db([0.0, 10.0, 100.0]), librosa.A_weighting([0.0, 10.0, 100.0]),
                               atol=1e-9)
    assert cf.a_weighting_db([0.0])[0] == -80.0


def test_short_and_bad_inputs_say_why():
    with pytest.raises(ValueError, match="too short.*at least 1025"):
        cf.cpjku_spectrogram(np.zeros(1000), 44100)
    with pytest.raises(ValueError, match="1-D"):
        cf.cpjku_spectrogram(np.zeros((2, 4000)))
    with pytest.raises(ValueError, match="hop"):
        cf.cpjku_spectrogram(np.zeros(4000), hop=0)


@pytest.mark.parametrize("kind, hop", [("audio-cpjku", 512), ("audio-cpjku-hop1536", 1536)])
def test_converter_makes_cpjku_records_from_audio(tmp_path, kind, hop):
    """`tools/convert.py --features audio-cpjku[-hop1536]` stores exactly the frontend's (256, frames)."""
    import os
    import runpy

    import soundfile as sf

    from tfmood import metadata
    from tfmood.tags import TAGS

    clips = {1: music(1.0, 22050, seed=1), 2: music(0.5, 22050, seed=2)}  # 22.05 kHz files: resampled to 44.1
    tracks = []
    for track_id, y in clips.items():
        track = metadata.Track(track_id, "artist", "album", f"{track_id:02d}/{track_id}.wav", 1.0, tuple(TAGS))
        (tmp_path / "audio" / f"{track_id:02d}").mkdir(parents=True)
        sf.write(str(tmp_path / "audio" / track.path), y, 22050)
        tracks.append(track)
    (tmp_path / "splits").mkdir()
    metadata.write_split(str(tmp_path / "splits" / "autotagging_moodtheme-test.tsv"), tracks)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cli = runpy.run_path(os.path.join(repo, "tools", "convert.py"), run_name="convert_cli")
    assert cli["main"](["--splits", str(tmp_path / "splits"), "--features", kind, "--features-root",
                        str(tmp_path / "audio"), "--out", str(tmp_path / "rec"), "--num-shards", "1",
                        "--workers", "1"]) == 0
    stored = _stored_tracks(str(tmp_path / "rec"), "test")
    assert sorted(stored) == [1, 2]
    for track in tracks:
        expected = cf.audio_to_cpjku(str(tmp_path / "audio" / track.path), hop=hop)
        assert expected.shape == (256, 1 + 2 * len(clips[track.track_id]) // hop)
        np.testing.assert_array_equal(stored[track.track_id], expected)


def _stored_tracks(records_dir, split):
    """{track_id: (bands, frames) features} of every record of `split`."""
    import glob

    import tensorflow as tf

    from tfmood.data import schema

    out = {}
    for shard in sorted(glob.glob(f"{records_dir}/{split}-*.tfrecord")):
        for raw in tf.data.TFRecordDataset(shard).as_numpy_iterator():
            track_id, _, features = schema.decode_numpy(raw)
            out[int(track_id)] = features
    return out
