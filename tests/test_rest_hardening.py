"""The local REST server under hostile or broken input: real servers on 127.0.0.1, real HTTP and sockets.

Every client error is a 400 family answer with TF Serving's `{"error": ...}` JSON and no traceback in the log;
the server bounds what one client can make it spend (body, input values, concurrent requests, connections,
idle time); and a version folder that was half-written when first seen is loaded once it is complete.
"""

import gzip
import json
import logging
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from serving_model import tiny_model

from tfmood import export
from tfmood.serving.repository import Repository
from tfmood.serving.server import Limits, ModelServer
from tfmood.tags import TAGS

BANDS = 96
PREDICT = "/v1/models/tagger:predict"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models")
    export.export_model(tiny_model(width=2), "tagger", base, warmup=False)
    repository = Repository.single(base / "tagger")
    repository.poll()
    return base, repository


@pytest.fixture(scope="module")
def server(exported):
    _, repository = exported
    server = ModelServer(repository, port=0).start()
    yield server
    server._server.shutdown()  # not .stop(): the repository is shared with the other servers here
    server._server.server_close()


def limited_server(repository, **limits):
    return ModelServer(repository, port=0, limits=Limits(**limits)).start()


def close(server):
    server._server.shutdown()
    server._server.server_close()


def call(server, body, path=PREDICT, headers=None, method="POST"):
    """(status, parsed JSON) of one request; error statuses are returned, not raised."""
    request = urllib.request.Request(server.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        assert error.headers["Content-Type"] == "application/json"
        return error.code, json.loads(error.read())


def raw_http(server, data, timeout=20):
    """Send raw bytes on a fresh connection and return everything the server answers until it closes."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def mel_text(frames=4, first="0.5"):
    """A one-instance row request for a [96, frames] mel whose first value is the literal `first`."""
    values = [first] + ["0.5"] * (BANDS * frames - 1)
    rows = ["[" + ",".join(values[i * frames:(i + 1) * frames]) + "]" for i in range(BANDS)]
    return ('{"instances": [[' + ",".join(rows) + "]]}").encode()


@pytest.fixture
def no_tracebacks(caplog):
    """Fails the test if any log record carries a traceback (the server's or Werkzeug's)."""
    caplog.set_level(logging.DEBUG)
    yield
    bad = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not bad, f"traceback logged: {bad[0].getMessage()[:300]}"


# === Client errors: 400 with TF Serving's error JSON, never 500 ===

BAD_BODIES = {
    "deep nesting": b'{"instances": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
    "nesting past any tensor rank": b'{"instances": [' + b"[" * 500 + b"1" + b"]" * 500 + b"]}",
    "non-UTF-8 byte": b'{"instances": [[\xff]]}',
    "UTF-16 with BOM": json.dumps({"instances": [[[0.5]] * BANDS]}).encode("utf-16"),
    "integer with 5000 digits": b'{"instances": [1' + b"0" * 5000 + b"]}",
    "integer past a double": mel_text(first="1" + "0" * 400),
    "deeply nested object leaf": b'{"instances": [{"mel": ' + b'{"a": ' * 900 + b"1" + b"}" * 900 + b"}]}",
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_malformed_bodies_are_400(server, no_tracebacks, body):
    status, answer = call(server, body)
    assert status == 400, answer
    assert set(answer) == {"error"} and answer["error"]


def test_gzip_bracket_bomb_is_400(server, no_tracebacks):
    bomb = gzip.compress(b'{"instances": ' + b"[" * 4_000_000)  # ~12 kB on the wire
    assert len(bomb) < 20_000
    status, answer = call(server, bomb, headers={"Content-Encoding": "gzip"})
    assert status == 400 and "JSON Parse error" in answer["error"]


def test_malformed_chunked_body_is_400(server, no_tracebacks):
    head = (f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: application/json\r\n\r\n").encode()
    for body in [b"zz\r\n{}\r\n0\r\n\r\n", b"5\r\n{}\r\n0\r\n\r\n"]:  # a bad size; a chunk shorter than said
        answer = raw_http(server, head + body)
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.split()[1] == b"400", answer[:300]
        assert "error" in json.loads(rest.split(b"\r\n\r\n", 1)[1])


def test_well_formed_chunked_body_still_works(server):
    body = mel_text()
    head = (f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
            "\r\n").encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                      for i in range(0, len(body), 1000))
    answer = raw_http(server, head + chunks + b"0\r\n\r\n")
    assert answer.split()[1] == b"200" and b'"scores"' in answer


# === Numbers outside float32 ===

@pytest.mark.parametrize("literal, message", [
    ("1e400", "JSON Parse error: Number too big to be stored in double."),
    ("3.5e38", "Cannot convert JSON value: 3.5e+38 to float without loss of precision."),
    ("-3.5e38", "Cannot convert JSON value: -3.5e+38 to float without loss of precision."),
    ("16777216", "Cannot convert JSON value: 16777216 to float without loss of precision."),
])
def test_values_outside_float32_are_400(server, no_tracebacks, literal, message):
    status, answer = call(server, mel_text(first=literal))
    assert (status, answer) == (400, {"error": f"Failed to process element: 0 of 'instances' list. "
                                               f"Error: INVALID_ARGUMENT: {message}"})


@pytest.mark.parametrize("literal", ["3.4e38", "-3.4e38", "16777215", "Infinity", "-Infinity", "NaN", "1e-50"])
def test_values_float32_holds_are_accepted(server, literal):
    status, answer = call(server, mel_text(first=literal))
    assert status == 200, answer
    assert len(answer["predictions"][0]["scores"]) == len(TAGS)


# === Clips without audio ===

@pytest.mark.parametrize("samples, status", [(0, 400), (1, 200), (512, 200)])
def test_waveform_without_samples_is_400(server, no_tracebacks, samples, status):
    """The export's rule (tfmood.export: at least one sample) holds over REST: 400, not confident scores."""
    body = json.dumps({"signature_name": "serve_waveform", "inputs": {"waveform": [[0.1] * samples]}})
    received, answer = call(server, body.encode())
    assert received == status, answer
    if status == 400:
        assert answer["error"].startswith("waveform needs at least one sample")
    else:
        assert len(answer["outputs"]["scores"][0]) == len(TAGS)


def test_mel_without_frames_is_400(server, no_tracebacks):
    status, answer = call(server, json.dumps({"inputs": {"mel": [[[]] * BANDS]}}).encode())
    assert status == 400 and "at least one time frame" in answer["error"], answer


# === Content-Encoding ===

@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "gzip, identity", "identity, GZIP", " x-gzip "])
def test_gzip_codings_are_inflated(server, encoding):
    status, answer = call(server, gzip.compress(mel_text()), headers={"Content-Encoding": encoding})
    assert status == 200, answer


def test_bad_codings(server, no_tracebacks):
    zipped = gzip.compress(mel_text())
    assert call(server, zipped[:len(zipped) // 2], headers={"Content-Encoding": "gzip"})[0] == 400
    status, answer = call(server, mel_text(), headers={"Content-Encoding": "br"})
    assert status == 415 and "br" in answer["error"]


def test_gzip_inflation_is_bounded(exported, no_tracebacks):
    server = limited_server(exported[1], max_request_bytes=100_000)
    try:
        status, answer = call(server, gzip.compress(b" " * 50_000_000), headers={"Content-Encoding": "x-gzip"})
        assert status == 413 and "100000" in answer["error"]
    finally:
        close(server)


# === Resource bounds ===

def test_input_values_per_request_are_bounded(exported):
    server = limited_server(exported[1], max_request_elements=BANDS * 10)
    try:
        assert call(server, mel_text(frames=10))[0] == 200
        status, answer = call(server, mel_text(frames=11))
        assert status == 400 and "1056 input values" in answer["error"]
        assert "--max-request-elements" in answer["error"]
    finally:
        close(server)


def test_concurrent_requests_are_bounded(exported, monkeypatch):
    repository = exported[1]
    server = limited_server(repository, max_concurrent_requests=2)
    state = {"now": 0, "most": 0}
    lock = threading.Lock()
    find = repository.find

    def slow_find(*args, **kwargs):  # every predict looks its model up once; hold it there for a while
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.3)
        with lock:
            state["now"] -= 1
        return find(*args, **kwargs)

    monkeypatch.setattr(repository, "find", slow_find)
    statuses = []
    try:
        threads = [threading.Thread(target=lambda: statuses.append(call(server, mel_text())[0]))
                   for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        close(server)
    assert statuses == [200] * 6 and state["most"] == 2


def test_connections_are_bounded_and_idle_ones_closed(exported):
    server = limited_server(exported[1], max_connections=2, idle_timeout_seconds=1.0)
    try:
        idle = [socket.create_connection((server.host, server.port), timeout=20) for _ in range(2)]
        time.sleep(0.2)  # let the server accept both
        answer = raw_http(server, b"")
        assert answer.startswith(b"HTTP/1.1 503") and b'"error"' in answer
        start = time.monotonic()
        for sock in idle:  # the server closes a connection that sends nothing for idle_timeout_seconds
            assert sock.recv(100) == b""
            sock.close()
        assert time.monotonic() - start < 10
        time.sleep(0.2)
        assert call(server, mel_text())[0] == 200  # slots are free again
    finally:
        close(server)


def test_keep_alive_connection_is_closed_when_idle(exported):
    server = limited_server(exported[1], idle_timeout_seconds=0.5)
    try:
        body = mel_text()
        with socket.create_connection((server.host, server.port), timeout=20) as sock:
            sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                         + body)
            received = b""
            start = time.monotonic()
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            assert received.startswith(b"HTTP/1.1 200") and time.monotonic() - start < 10
    finally:
        close(server)


# === Versions that were half-written when first seen ===

def test_half_copied_version_loads_once_complete(exported, tmp_path):
    source = exported[0] / "tagger" / "1"
    target = tmp_path / "tagger" / "1"
    target.mkdir(parents=True)
    pb = (source / "saved_model.pb").read_bytes()
    (target / "saved_model.pb").write_bytes(pb[:len(pb) // 2])  # a copy caught half-way
    repository = Repository.single(tmp_path / "tagger", load_retry_seconds=3600)
    for _ in range(7):  # more polls than TF Serving's 5 load retries: a failed copy must not be given up
        repository.poll()
    server = ModelServer(repository, port=0).start()
    try:
        status, answer = call(server, None, "/v1/models/tagger", method="GET")
        assert status == 200 and answer["model_version_status"][0]["state"] == "END"
        assert answer["model_version_status"][0]["status"]["error_code"] == "UNKNOWN"
        assert call(server, mel_text())[0] == 404
        shutil.copytree(source, target, dirs_exist_ok=True)  # the copy completes
        repository.start_polling(0.1)
        deadline = time.monotonic() + 30
        while call(server, mel_text())[0] != 200:
            assert time.monotonic() < deadline, "the completed version was never loaded"
            time.sleep(0.1)
        status, answer = call(server, None, "/v1/models/tagger", method="GET")
        assert answer["model_version_status"][0]["state"] == "AVAILABLE"
    finally:
        server.stop()


def test_failed_version_is_retried_on_the_interval(exported, tmp_path):
    """Unchanged files are retried every load_retry_seconds (what fails may be outside the folder)."""
    target = tmp_path / "tagger" / "1"
    target.mkdir(parents=True)
    (target / "saved_model.pb").write_bytes(b"not yet")
    repository = Repository.single(tmp_path / "tagger", load_retry_seconds=0.3)
    repository.poll()
    servable = repository.servables["tagger"][1]
    assert (servable.state, servable.attempts) == ("END", 1)
    repository.poll()
    assert servable.attempts == 1  # too soon, and nothing changed
    time.sleep(0.4)
    repository.poll()
    assert servable.attempts == 2
