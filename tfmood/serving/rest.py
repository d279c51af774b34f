"""TF Serving's REST API routes (`model_servers/http_rest_api_handler.cc`), independent of the HTTP library.

    GET  /v1/models/{m}[/versions/{n}|/labels/{l}]            model status
    GET  /v1/models/{m}[/versions/{n}|/labels/{l}]/metadata   signature defs
    POST /v1/models/{m}[/versions/{n}|/labels/{l}]:predict    predict (row or columnar JSON)
    POST ...:classify | :regress                              501: not implemented here

`RestApi.handle(method, path, body)` returns `(http_status, json_object)`; `json_object` is None for the plain
404 that TF Serving gives paths outside /v1/.
"""

import logging
import re
import urllib.parse

from tfmood.serving import tensor_json
from tfmood.serving.errors import RestError

log = logging.getLogger(__name__)
_V1 = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_SELECTOR = r"(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
_POST = re.compile(r"/v1/models/([^/:]+)" + _SELECTOR + r":(classify|regress|predict)", re.IGNORECASE)
_GET = re.compile(r"/v1/models(?:/([^/:]+))?" + _SELECTOR + r"(?:/(metadata))?", re.IGNORECASE)
DEFAULT_SIGNATURE = "serving_default"
_INT64_MAX = 2 ** 63 - 1


class RestApi:
    """Answers REST requests from a `Repository` of loaded models."""

    def __init__(self, repository, max_request_elements=None):
        self.repository = repository
        self.max_request_elements = max_request_elements  # None: no bound (the HTTP server sets one)

    def handle(self, method, path, body=b""):
        if not _V1.fullmatch(path):
            return 404, None
        try:
            return 200, self._route(method.upper(), path, body)
        except RestError as error:
            return error.http_status, {"error": error.message}
        except Exception as error:  # a bug must cost one request a JSON 500, not the server
            log.exception("Internal error on %s %s", method, path)
            return 500, {"error": f"Internal error: {type(error).__name__}: {error}"}

    def _route(self, method, path, body):
        post, get = _POST.fullmatch(path), _GET.fullmatch(path)
        if method == "POST" and post:
            name, version, label, verb = post.groups()
            selector = _selector(name, version, label)
            if verb.lower() != "predict":
                raise RestError("UNIMPLEMENTED", f"{verb.lower()} is not implemented by the tfmood server; "
                                "tfmood signatures are predict signatures, use :predict")
            return self.predict(*selector, body)
        if method == "GET" and get:
            name, version, label, subresource = get.groups()
            if not name:
                raise RestError.invalid("Missing model name in request.")
            selector = _selector(name, version, label)
            if subresource is None:
                return self.repository.status(*selector)
            if subresource == "metadata":
                return self.metadata(*selector)
        raise RestError.invalid(f"Malformed request: {method} {path}")

    def predict(self, name, version, label, body):
        document = tensor_json.parse_json(body)
        signature = tensor_json.signature_name(document)
        servable = self.repository.find(name, version, label)
        key = signature or DEFAULT_SIGNATURE
        fmt, tensors = tensor_json.request_tensors(document, servable.input_dtypes(key), signature)
        elements = sum(int(array.size) for array in tensors.values())
        if self.max_request_elements is not None and elements > self.max_request_elements:
            raise RestError.invalid(f"The request holds {elements} input values; this server takes at most "
                                    f"{self.max_request_elements} per request (--max-request-elements). "
                                    "Send shorter clips or fewer examples per request.")
        return tensor_json.response_body(servable.predict(key, tensors), fmt)

    def metadata(self, name, version, label):
        servable = self.repository.find(name, version, label)
        return {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
                "metadata": {"signature_def": {"signature_def": servable.metadata()}}}


def _selector(name, version, label):
    """(model name, int version or None, label or None) with TF Serving's URL unescaping and checks."""
    if version is not None:
        if int(version) > _INT64_MAX:
            raise RestError.invalid(f"Failed to convert version: {version} to numeric.")
        version = int(version)
    unescape = urllib.parse.unquote
    return unescape(name), version, None if label is None else unescape(label)
