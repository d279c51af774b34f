"""The ready tagger: MTG's baseline fetched from a local HTTP server on 127.0.0.1 (never the internet),
checked against its pinned SHA-256, imported and cached; clear failures offline and on a wrong file."""

import functools
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tfmood import pretrained
from tfmood.tags import TAGS

REPO = Path(__file__).resolve().parent.parent
BASELINE_DIR = REPO.parent / "shared" / "jamendo" / "baseline"


@pytest.fixture()
def http_dir(tmp_path):
    """Serve a folder over HTTP on 127.0.0.1; yields (folder, base URL)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def closed_port_url():
    with socket.socket() as s:  # bound then released: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/best_model.pth"


def test_checksum_mismatch_is_a_clear_error_and_caches_nothing(http_dir, cache, monkeypatch):
    folder, url = http_dir
    (folder / "best_model.pth").write_bytes(b"not MTG's weights" * 1000)
    monkeypatch.setenv(pretrained.URL_ENV, f"{url}/best_model.pth")
    with pytest.raises(pretrained.PretrainedError, match="has SHA-256 [0-9a-f]{64}, expected c1d6bee6"):
        pretrained.fetch_checkpoint()
    downloads = cache / "downloads"
    assert not downloads.exists() or list(downloads.iterdir()) == []


def test_offline_message_names_the_manual_alternative(cache, audio_file):
    env = dict(os.environ, **{pretrained.CACHE_ENV: str(cache), pretrained.URL_ENV: closed_port_url()})
    run = subprocess.run([sys.executable, "-m", "tfmood.predict", str(audio_file)], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "Could not download MTG's VGG-ish baseline" in run.stderr
    assert "tools/import_mtg_baseline.py" in run.stderr and pretrained.BASELINE_SHA256 in run.stderr
    assert not (cache / "downloads").exists() or list((cache / "downloads").iterdir()) == []


@pytest.fixture()
def audio_file(tmp_path):
    t = np.arange(3 * 22050) / 22050
    path = tmp_path / "song.wav"
    sf.write(str(path), (0.2 * np.sin(2 * np.pi * 330 * t) * np.exp(-(t % 0.7))).astype(np.float32), 22050)
    return path


@pytest.mark.skipif(not (BASELINE_DIR / "best_model.pth").is_file(), reason="needs ../shared/jamendo/baseline")
def test_predict_without_model_downloads_checks_imports_and_caches_the_baseline(http_dir, cache, audio_file,
                                                                                  capsys):
    folder, url = http_dir
    (folder / "best_model.pth").symlink_to(BASELINE_DIR / "best_model.pth")
    env = dict(os.environ, **{pretrained.CACHE_ENV: str(cache), pretrained.URL_ENV: f"{url}/best_model.pth"})
    command = [sys.executable, "-m", "tfmood.predict", str(audio_file), "--json"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "Downloading MTG's VGG-ish baseline" in first.stderr
    checkpoint = cache / "downloads" / pretrained.BASELINE_FILE
    assert pretrained.sha256_of(checkpoint) == pretrained.BASELINE_SHA256
    info = json.loads((cache / "models" / "mtg-vggish" / "1" / "assets" / "tfmood.json").read_text())
    assert info["protocol"] == {"crop_frames": 960, "segments": 16, "short_clips": "tile"}

    # Second run (in this process, to save a TensorFlow start-up): from the cache, with the file gone from
    # the server (nothing is fetched again), the same answer.
    from tfmood import predict

    (folder / "best_model.pth").unlink()
    assert predict.main([str(audio_file), "--json"]) == 0  # `cache` set TFMOOD_CACHE here too
    second = capsys.readouterr()
    assert "Downloading" not in second.err
    assert json.loads(second.out) == json.loads(first.stdout)

    # The cached model is MTG's weights: the Keras port scores the clip the same (protocol in numpy).
    from tfmood.frontend import audio_to_mel
    from tfmood.mtg_baseline import load_mtg_vggish

    model = load_mtg_vggish(str(checkpoint))
    mel = audio_to_mel(str(audio_file))
    crops = np.tile(mel, (1, -(-960 // mel.shape[1])))[:, :960][None]  # a 3-s clip: tiled to one crop
    expected = np.asarray(model(crops[..., None], training=False))[0]
    scores = json.loads(first.stdout)["scores"]
    np.testing.assert_allclose([scores[t] for t in TAGS], expected, atol=1e-4)
