"""The local TF-Serving-compatible REST server and client, over real HTTP on 127.0.0.1."""

import gzip
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from serving_model import tiny_model
from werkzeug.test import Client as WsgiClient

from tfmood import export, serve
from tfmood.serving import Client, ServingError
from tfmood.protocol import Protocol
from tfmood.serving import tensor_json
from tfmood.serving.config import ModelConfig
from tfmood.serving.errors import RestError
from tfmood.serving.repository import Repository
from tfmood.serving.rest import RestApi
from tfmood.serving.server import ModelServer, RestApp
from tfmood.tags import TAGS

BANDS = 96


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models")
    model = tiny_model()
    export.export_model(model, "tagger", base, warmup=False)
    repository = Repository.single(base / "tagger")
    repository.poll()
    server = ModelServer(repository, port=0).start()
    yield model, server, base
    server.stop()


def call(server, method, path, body=None, headers=None):
    """(status, content type, text) of one HTTP request; error statuses are returned, not raised."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(server.url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def scored(model, x):
    """What serving_default answers: the model's scoring protocol (tfmood.protocol) over mel x."""
    return Protocol().score(lambda m: model(m[..., None], training=False), x).numpy()


def mel(batch=2, frames=5, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, BANDS, frames)).astype(np.float32)


# === Status and metadata ===

def test_model_status(served):
    _, server, _ = served
    expected = {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    for path in ["/v1/models/tagger", "/v1/models/tagger/versions/1", "/V1/Models/tagger"]:
        status, content_type, text = call(server, "GET", path)
        assert (status, content_type, json.loads(text)) == (200, "application/json", expected)


def test_metadata_has_tf_serving_shape(served):
    _, server, _ = served
    status, _, text = call(server, "GET", "/v1/models/tagger/metadata")
    body = json.loads(text)
    assert status == 200 and body["model_spec"] == {"name": "tagger", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "serve_waveform", "__saved_model_init_op"} <= set(signatures)
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["mel"]["dtype"] == "DT_FLOAT"
    assert default["inputs"]["mel"]["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}, {"size": "96", "name": ""}, {"size": "-1", "name": ""}],
        "unknown_rank": False}
    assert default["outputs"]["tags"]["dtype"] == "DT_STRING"


# === Predict ===

def test_row_predict_matches_keras(served):
    model, server, _ = served
    x = mel()
    status, _, text = call(server, "POST", "/v1/models/tagger:predict", json.dumps({"instances": x.tolist()}))
    predictions = json.loads(text)["predictions"]
    assert status == 200 and len(predictions) == 2
    scores = np.array([p["scores"] for p in predictions], dtype=np.float32)
    np.testing.assert_allclose(scores, scored(model, x), atol=1e-5)
    assert predictions[1]["tags"] == list(TAGS)
    # float32 written as shortest round-trip decimals, not 17-digit doubles
    assert not re.search(r"\d\.\d{10,}", text)


def test_columnar_predict_named_and_bare(served):
    model, server, _ = served
    x = mel(batch=1, frames=3, seed=1)
    expected = scored(model, x)
    for inputs in ({"mel": x.tolist()}, x.tolist()):
        status, _, text = call(server, "POST", "/v1/models/tagger/versions/1:predict", json.dumps({"inputs": inputs}))
        outputs = json.loads(text)["outputs"]
        assert status == 200 and set(outputs) == {"scores", "tags"}
        np.testing.assert_allclose(np.array(outputs["scores"], np.float32), expected, atol=1e-5)
        assert np.array(outputs["tags"]).shape == (1, len(TAGS))


def test_waveform_signature_and_named_instances(served):
    pytest.importorskip("tfmood.frontend")
    _, server, _ = served
    wave = np.random.default_rng(2).uniform(-0.3, 0.3, size=1200).astype(np.float32)
    body = {"signature_name": "serve_waveform", "instances": [{"waveform": wave.tolist()}]}
    status, _, text = call(server, "POST", "/v1/models/tagger:predict", json.dumps(body))
    assert status == 200
    assert len(json.loads(text)["predictions"][0]["scores"]) == len(TAGS)


BAD_REQUESTS = [
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("GET", "/v1/models/tagger/versions/9", None, 404, "Could not find version 9 of model tagger"),
    ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/tagger:predict", "", 400, "JSON Parse error: The document is empty"),
    ("POST", "/v1/models/tagger:predict", "{bad", 400, "JSON Parse error: "),
    ("POST", "/v1/models/tagger:predict", "[1]", 400, "Is not object"),
    ("POST", "/v1/models/tagger:predict", "{}", 400, "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/tagger:predict", '{"instances": []}', 400, "No values in 'instances' array"),
    ("POST", "/v1/models/tagger:predict", '{"instances": [1], "inputs": [1]}', 400, "expecting only one of"),
    ("POST", "/v1/models/tagger:predict", '{"signature_name": "nope", "inputs": [1]}', 400,
     'Serving signature name: "nope" not found in signature def'),
    ("POST", "/v1/models/nope:predict", '{"inputs": [1]}', 404, "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/tagger/versions/7:predict", '{"inputs": [1]}', 404,
     "Servable not found for request: Specific(tagger, 7)"),
    ("POST", "/v1/models/tagger/labels/stable:predict", '{"inputs": [1]}', 400,
     "Unrecognized servable version label: stable"),
    ("POST", "/v1/models/tagger:predict", '{"inputs": [[[1.0], [2.0]]]}', 400, "expects [-1,96,-1]"),
    ("POST", "/v1/models/tagger:predict", '{"inputs": [[["a"]]]}', 400, "is not of expected type: float"),
    ("POST", "/v1/models/tagger:predict", '{"inputs": [[[1.0], [2.0, 3.0]]]}', 400, "unexpected size: 2"),
    ("POST", "/v1/models/tagger:predict", '{"instances": [[[1.0]], [[1.0, 2.0]]]}', 400,
     "Expecting shape [1,1] but got: [1,2]"),
    ("POST", "/v1/models/tagger:classify", '{"examples": [{}]}', 501, "not implemented"),
    ("POST", "/v1/models/tagger:regress", '{"examples": [{}]}', 501, "not implemented"),
    ("GET", "/v1/models/tagger:predict", None, 400, "Malformed request: GET /v1/models/tagger:predict"),
    ("POST", "/v1/models/tagger/metadata", "{}", 400, "Malformed request: POST /v1/models/tagger/metadata"),
    ("GET", "/v1/models/tagger/version/1", None, 400, "Malformed request: GET /v1/models/tagger/version/1"),
    ("DELETE", "/v1/models/tagger", None, 400, "Malformed request: DELETE /v1/models/tagger"),
]


@pytest.mark.parametrize("method,path,body,code,message", BAD_REQUESTS)
def test_errors_and_survival(served, method, path, body, code, message):
    _, server, _ = served
    status, content_type, text = call(server, method, path, body)
    assert (status, content_type) == (code, "application/json")
    assert message in json.loads(text)["error"]
    # the server keeps answering after every bad request
    assert call(server, "POST", "/v1/models/tagger:predict", json.dumps({"inputs": mel(1, 2).tolist()}))[0] == 200


def test_paths_outside_v1_get_plain_404(served):
    _, server, _ = served
    status, content_type, _ = call(server, "GET", "/models/tagger")
    assert status == 404 and content_type.startswith("text/html")


def test_body_limit_gzip_and_cors_preflight(served):
    _, server, _ = served
    app = RestApp(RestApi(server.repository), max_request_bytes=2000, enable_cors=True)
    client = WsgiClient(app)
    small = json.dumps({"inputs": np.zeros((1, BANDS, 2)).tolist()}).encode()  # ~1 kB
    too_big = client.post("/v1/models/tagger:predict", data=b"{" + b" " * 3000 + b"}")
    assert too_big.status_code == 413 and "exceeds the limit of 2000 bytes" in too_big.get_json()["error"]
    zipped = client.post("/v1/models/tagger:predict", data=gzip.compress(small), headers={"Content-Encoding": "gzip"})
    assert zipped.status_code == 200 and len(zipped.get_json()["outputs"]["scores"][0]) == len(TAGS)
    assert zipped.headers["Access-Control-Allow-Origin"] == "*"
    bomb = client.post("/v1/models/tagger:predict", data=gzip.compress(b" " * 10000),
                       headers={"Content-Encoding": "gzip"})
    assert bomb.status_code == 413
    assert client.options("/v1/models/tagger", headers={"Origin": "http://a.b"}).status_code == 200
    assert client.options("/v1/models/tagger").status_code == 400


def test_tensor_json_type_rules_and_output_encoding():
    def tensors(inputs, dtype):
        return tensor_json.request_tensors({"inputs": inputs}, {"x": dtype}, "")[1]["x"]

    assert tensors([1, 2], np.int32).dtype == np.int32
    assert tensors([{"b64": "YWI="}, "c"], object).tolist() == [b"ab", b"c"]
    assert tensors([True], np.bool_).tolist() == [True]
    assert np.isnan(tensors(tensor_json.parse_json('{"inputs": [NaN]}')["inputs"], np.float32)[0])
    for value, dtype, message in [([1.0], np.int32, "is not of expected type: int32"),
                                  ([1], np.bool_, "is not of expected type: bool"),
                                  ([True], np.float32, "Type: True is not of expected type: float"),
                                  ([{"b64": "!"}], object, "Unable to base64 decode"),
                                  ([[1], 2], np.float32, "found at incorrect level")]:
        with pytest.raises(RestError, match=re.escape(message)):
            tensors(value, dtype)
    with pytest.raises(RestError) as error:
        tensors([1.0], np.float16)
    assert error.value.http_status == 501

    out = tensor_json.response_body({"id_bytes": np.array([b"\x00"], object),
                                     "s": np.array([0.1, 2.0], np.float32)}, tensor_json.COLUMNAR)
    assert json.dumps(out) == '{"outputs": {"id_bytes": [{"b64": "AA=="}], "s": [0.1, 2.0]}}'
    assert tensor_json.response_body({"s": np.zeros((0, 3), np.float32)}, tensor_json.ROW) == {"predictions": []}
    for outputs, message in [({"h": np.zeros(2, np.float16)}, "tensor type: half"),
                             ({"a": np.float32(1.0)}, "has no shape information"),
                             ({"a": np.zeros(2), "b": np.zeros(3)}, "inconsistent batch size")]:
        with pytest.raises(RestError, match=message):
            tensor_json.response_body(outputs, tensor_json.ROW)


# === Versions ===

def test_new_version_is_picked_up_and_old_one_unloaded(tmp_path):
    first, second = tiny_model(8, seed=1), tiny_model(8, seed=2)
    export.export_model(first, "m", tmp_path, warmup=False)
    repository = Repository.single(tmp_path / "m")
    repository.poll()
    repository.start_polling(0.1)
    server = ModelServer(repository, port=0).start()
    try:
        client = Client(server.url, "m")
        x = np.ones((8, 3), np.float32)
        np.testing.assert_allclose(client.predict_mel(x), scored(first, x[None])[0], atol=1e-5)
        export.export_model(second, "m", tmp_path, warmup=False)
        deadline = time.time() + 60
        while client.status()["model_version_status"][0]["version"] != "2" or \
                client.status()["model_version_status"][0]["state"] != "AVAILABLE":
            assert time.time() < deadline, "version 2 was not picked up"
            time.sleep(0.1)
        np.testing.assert_allclose(client.predict_mel(x), scored(second, x[None])[0], atol=1e-5)
        states = {s["version"]: s["state"] for s in client.status()["model_version_status"]}
        assert states == {"2": "AVAILABLE", "1": "END"}
        with pytest.raises(ServingError, match="Specific\\(m, 1\\)") as error:
            Client(server.url, "m", version=1).predict_mel(x)
        assert error.value.status == 404
    finally:
        server.stop()


def test_model_config_with_labels_and_policy(served):
    _, _, base = served
    config = ModelConfig("alias", str(base / "tagger"), policy="specific", versions=(1,), labels={"stable": 1})
    repository = Repository([config])
    repository.poll()
    api = RestApi(repository)
    status, body = api.handle("GET", "/v1/models/alias/labels/stable")
    assert status == 200 and body["model_version_status"][0]["version"] == "1"
    status, body = api.handle("POST", "/v1/models/alias/labels/stable:predict",
                              json.dumps({"instances": mel(1, 2).tolist()}).encode())
    assert status == 200 and len(body["predictions"]) == 1
    assert api.handle("GET", "/v1/models/alias/labels/canary")[0] == 400


# === Client ===

def test_client_predictions(served, tmp_path):
    model, server, _ = served
    client = Client(server.url, "tagger")
    x = mel(batch=3, frames=4)
    batch = client.predict_mel(x)
    assert batch.shape == (3, len(TAGS))
    np.testing.assert_allclose(batch, scored(model, x), atol=1e-5)
    np.testing.assert_allclose(client.predict_mel(x[0]), batch[0], atol=1e-6)
    assert client.top_tags(batch[0], 2)[0] == (TAGS[int(np.argmax(batch[0]))], pytest.approx(batch[0].max()))
    assert client.metadata()["model_spec"]["version"] == "1"
    with pytest.raises(ServingError) as error:
        Client(server.url, "nope").status()
    assert error.value.status == 404 and "nope" in error.value.message
    with pytest.raises(ValueError, match="Received shape"):
        client.predict_mel(np.zeros(4))


def test_client_waveform_and_file(served, tmp_path):
    frontend = pytest.importorskip("tfmood.frontend")
    soundfile = pytest.importorskip("soundfile")
    model, server, _ = served
    client = Client(server.url, "tagger")
    wave = np.random.default_rng(3).uniform(-0.5, 0.5, size=2400).astype(np.float32)
    path = tmp_path / "clip.wav"
    soundfile.write(path, wave, 12000, subtype="FLOAT")
    expected = scored(model, frontend.log_mel_numpy(wave)[None])[0]
    np.testing.assert_allclose(client.predict_file(path), expected, atol=1e-5)
    np.testing.assert_allclose(client.predict_waveform(wave), expected, atol=1e-4)
    np.testing.assert_allclose(client.predict_file(path, "serve_waveform"), expected, atol=1e-4)


# === CLI ===

def test_cli_builds_a_server(served):
    _, _, base = served
    args = serve.parse_args(["--model-base-path", str(base / "tagger"), "--port", "0", "--poll-seconds", "0"])
    server = serve.build_server(args).start()
    try:
        assert Client(server.url, "tagger").status()["model_version_status"][0]["state"] == "AVAILABLE"
    finally:
        server.stop()


@pytest.mark.slow
def test_cli_subprocess(served):
    _, _, base = served
    process = subprocess.Popen([sys.executable, "-m", "tfmood.serve", "--model-base-path", str(base / "tagger"),
                                "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        url = re.search(r"on (http://\S+)", process.stdout.readline()).group(1)
        assert Client(url, "tagger").status()["model_version_status"][0]["version"] == "1"
    finally:
        process.terminate()
        process.wait(timeout=30)
