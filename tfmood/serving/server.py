"""The local TF-Serving-compatible REST server: `RestApi` behind a threaded Werkzeug WSGI server.

    from tfmood.serving.server import ModelServer
    server = ModelServer(Repository.single("saved_models/tagger"), port=8501)
    server.serve_forever()          # or server.start() for a background thread, then server.stop()

Adds what TF Serving's HTTP layer does around the handler: `Content-Type: application/json` answers, gzip
request bodies, CORS preflight (`OPTIONS`), and a request-size limit (413, like an HTTP server's body cap).
"""

import json
import logging
import threading
import zlib

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tfmood.serving.rest import RestApi

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 32 << 20  # fits a 2-minute 12 kHz waveform or a 10-minute log-mel as JSON
_NOT_FOUND_HTML = "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>"


class RestApp:
    """The WSGI application: HTTP details around `RestApi.handle`."""

    def __init__(self, api, max_request_bytes=MAX_REQUEST_BYTES, enable_cors=False):
        if int(max_request_bytes) < 1:
            raise ValueError(f"max_request_bytes must be >= 1. Received {max_request_bytes}.")
        self.api = api
        self.max_request_bytes = int(max_request_bytes)
        self.enable_cors = enable_cors

    def __call__(self, environ, start_response):
        return self.respond(Request(environ))(environ, start_response)

    def respond(self, request):
        if request.method == "OPTIONS":
            origin = request.headers.get("Origin", "")
            return self._cors(Response(status=200 if origin.startswith(("http://", "https://")) else 400))
        body, error = self._body(request)
        if error:
            return self._json(413, {"error": error})
        status, payload = self.api.handle(request.method, _raw_path(request.environ), body)
        if payload is None:
            return Response(_NOT_FOUND_HTML, status=status, content_type="text/html")
        return self._json(status, payload)

    def _body(self, request):
        """(body bytes, error message): at most max_request_bytes, before and after gzip inflation."""
        limit = self.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            return b"", f"Request body of {request.content_length} bytes exceeds the limit of {limit} bytes"
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            return b"", f"Request body exceeds the limit of {limit} bytes"
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                body = inflater.decompress(body, limit + 1)
            except zlib.error as error:
                return b"", f"Failed to decompress gzip request body: {error}"
            if len(body) > limit:
                return b"", f"Uncompressed request body exceeds the limit of {limit} bytes"
        return body, None

    def _json(self, status, payload):
        text = json.dumps(payload, indent=4 if "error" in payload else None)
        return self._cors(Response(text, status=status, content_type="application/json"))

    def _cors(self, response):
        if self.enable_cors:
            response.headers.update({"Access-Control-Allow-Origin": "*",
                                     "Access-Control-Allow-Methods": "POST, GET",
                                     "Access-Control-Allow-Headers": "Content-Type"})
        return response


class ModelServer:
    """A threaded HTTP server for a `Repository`; port 0 picks a free port (see `.port`)."""

    def __init__(self, repository, host="127.0.0.1", port=8501, max_request_bytes=MAX_REQUEST_BYTES,
                 enable_cors=False):
        self.repository = repository
        app = RestApp(RestApi(repository), max_request_bytes, enable_cors)
        self._server = make_server(host, port, app, threaded=True)
        self.host, self.port = host, self._server.server_port
        self._thread = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def serve_forever(self):
        log.info("Serving REST on %s (models: %s)", self.url, ", ".join(self.repository.configs))
        self._server.serve_forever()

    def start(self):
        """Serve in a daemon thread (tests, notebooks); returns self."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="tfmood-rest", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self.repository.stop()
        if self._thread:
            self._thread.join(timeout=10)


def _raw_path(environ):
    """The request path as sent (still %-escaped, no query): TF Serving matches routes before unescaping."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        return environ.get("PATH_INFO", "")
    return raw.split("?", 1)[0]
