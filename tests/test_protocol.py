"""One clip, one answer: the scoring protocol through every entry point, run the way users run them.

Real-ish audio (tone chords with envelopes, one clip longer than a crop, one shorter) is scored by
- `python -m tfmood.predict --json` in a subprocess,
- the REST server on 127.0.0.1: `serving_default` with the clip's log-mel, `serve_waveform` with its samples,
- `python -m tfmood.evaluate --model` on records converted from the same audio by the project's converter
  (`tools/convert.py --features audio`, its main() in-process),
- training validation's scorer (`pipeline.predict_tracks`, what TrackEvaluation calls) with the Keras model,
and every answer must agree to 1e-4. A tiny protocol (crops of 64 frames, 3 segments) keeps it fast.
"""

import json
import os
import runpy
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
import soundfile as sf

from tfmood import metadata
from tfmood.protocol import Protocol
from tfmood.tags import NUM_TAGS, TAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTOCOL = Protocol(crop_frames=64, segments=3)
RATE = 22050  # not 12 kHz: decoding and MTG's resampling are part of every path


def tones(seconds, pitches, seed):
    """A chord of decaying tones with a little noise: music-like spectra that change over time."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    y = sum(np.sin(2 * np.pi * f * t) * np.exp(-((t * 2.3 + k) % 1.7)) for k, f in enumerate(pitches))
    return (0.2 * y / len(pitches) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Audio in MTG's layout (splits + NN/ID.wav), a tiny vggish exported with PROTOCOL, converted records."""
    import keras

    from tfmood import models
    from tfmood.export import export_model

    root = tmp_path_factory.mktemp("protocol")
    clips = {1: tones(5.0, (220, 277, 330), 1), 2: tones(0.6, (392, 494), 2),   # test: long, short
             3: tones(3.0, (147, 185), 3), 4: tones(2.0, (523, 659), 4),        # validation
             5: tones(1.0, (300,), 5)}                                          # train (unused)
    half = NUM_TAGS // 2  # every tag has a positive and a negative in each split
    tracks = {}
    for track_id, y in clips.items():
        tags = TAGS[:half] if track_id % 2 else TAGS[half:]
        track = metadata.Track(track_id, f"artist_{track_id}", f"album_{track_id}", f"{track_id:02d}/{track_id}.wav",
                               round(y.size / RATE, 1), tuple(tags))
        os.makedirs(root / "audio" / f"{track_id:02d}", exist_ok=True)
        sf.write(str(root / "audio" / track.path), y, RATE)
        tracks[track_id] = track
    (root / "splits").mkdir()
    for split, ids in (("train", [5]), ("validation", [3, 4]), ("test", [1, 2])):
        metadata.write_split(str(root / "splits" / f"autotagging_moodtheme-{split}.tsv"), [tracks[i] for i in ids])

    keras.utils.set_random_seed(0)
    model = models.build("vggish", channels=(4, 4, 4, 4, 4))
    export_model(model, "tiny", base_dir=str(root / "saved_models"), protocol=PROTOCOL, warmup=False)
    # The project's converter CLI (in this process: one worker converts in-process, no second TF start-up).
    convert_cli = runpy.run_path(os.path.join(REPO, "tools", "convert.py"), run_name="convert_cli")
    assert convert_cli["main"](["--splits", str(root / "splits"), "--features", "audio", "--features-root",
                                str(root / "audio"), "--out", str(root / "records"), "--num-shards", "1",
                                "--workers", "1"]) == 0
    return root, model, tracks


def test_one_clip_gets_one_answer_everywhere(world):
    from tfmood import evaluate
    from tfmood.audio import load_audio
    from tfmood.data.pipeline import predict_tracks
    from tfmood.frontend import audio_to_mel
    from tfmood.serving.repository import Repository
    from tfmood.serving.server import ModelServer

    root, model, tracks = world
    files = [str(root / "audio" / tracks[i].path) for i in (1, 2)]
    answers = {}

    # 1. the CLI, as a user runs it
    run = subprocess.run([sys.executable, "-m", "tfmood.predict", *files, "--model",
                          str(root / "saved_models" / "tiny"), "--json"], capture_output=True, text=True, cwd=REPO,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    records = {r["file"]: r for r in map(json.loads, run.stdout.splitlines())}
    answers["predict"] = np.array([[records[f]["scores"][t] for t in TAGS] for f in files])

    # 2. REST on 127.0.0.1: the mel a client computes, and the samples
    repository = Repository.single(root / "saved_models" / "tiny")
    repository.poll()
    server = ModelServer(repository, port=0).start()
    try:
        def rest(signature, instance):
            body = json.dumps({"signature_name": signature, "instances": [instance.tolist()]}).encode()
            request = urllib.request.Request(server.url + "/v1/models/tiny:predict", data=body, method="POST")
            with urllib.request.urlopen(request, timeout=120) as response:
                return np.array(json.loads(response.read())["predictions"][0]["scores"])

        answers["serving_default"] = np.stack([rest("serving_default", audio_to_mel(f)) for f in files])
        waves = [load_audio(f, sample_rate=12000, resampler="mtg") for f in files]
        answers["serve_waveform"] = np.stack([rest("serve_waveform", w) for w in waves])
        raw = np.stack([rest("serve_raw", audio_to_mel(f)) for f in files])
    finally:
        server.stop()

    # 3. evaluate on records converted from the same audio (the SavedModel's own protocol, from its assets)
    out = root / "eval"
    evaluate.main(["--model", str(root / "saved_models" / "tiny"), "--data", str(root / "records"),
                   "--out", str(out), "--no-figure"])
    ids = list(np.load(out / "test_track_ids.npy"))
    answers["evaluate"] = np.load(out / "test_predictions.npy")[[ids.index(1), ids.index(2)]]
    assert json.load(open(out / "metrics.json"))["source"]["protocol"] == PROTOCOL.to_dict()

    # 4. training validation's scorer, on the Keras model itself
    track_ids, scores, _ = predict_tracks(model, str(root / "records"), "test", PROTOCOL.crop_frames,
                                          PROTOCOL.segments)
    answers["validation"] = scores[[list(track_ids).index(1), list(track_ids).index(2)]]

    reference = answers["predict"]
    for name, value in answers.items():
        np.testing.assert_allclose(value, reference, atol=1e-4, err_msg=f"{name} disagrees with predict")
    # The raw whole-input score is a different question, and the long clip shows it.
    assert np.abs(raw[0] - reference[0]).max() > 1e-3


def test_evaluate_refuses_a_protocol_other_than_the_models(world, capsys):
    from tfmood import evaluate

    root, _, _ = world
    with pytest.raises(SystemExit, match="exported with the scoring protocol .* segments=16 disagrees"):
        evaluate.main(["--model", str(root / "saved_models" / "tiny"), "--data", str(root / "records"),
                       "--out", str(root / "eval-bad"), "--segments", "16"])
    assert not (root / "eval-bad" / "metrics.json").exists()


def test_protocol_rejects_bad_values_and_round_trips():
    assert Protocol.from_dict(PROTOCOL.to_dict()) == PROTOCOL
    with pytest.raises(ValueError, match="tfmood.json: Scoring protocol: `crop_frames` must be an integer >= 1"):
        Protocol.from_dict({"crop_frames": 0, "segments": 3}, "tfmood.json")
    with pytest.raises(ValueError, match="unknown scoring protocol fields \\['hop'\\]"):
        Protocol.from_dict({"hop": 3})
    with pytest.raises(ValueError, match="short_clips"):
        Protocol(short_clips="pad")
