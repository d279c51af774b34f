"""The local TF-Serving-compatible REST server: `RestApi` behind a threaded Werkzeug WSGI server.

    from tfmood.serving.server import ModelServer
    server = ModelServer(Repository.single("saved_models/tagger"), port=8501)
    server.serve_forever()          # or server.start() for a background thread, then server.stop()

Adds what TF Serving's HTTP layer does around the handler: `Content-Type: application/json` answers, gzip
request bodies, CORS preflight (`OPTIONS`). It also bounds what one client can make the server spend (`Limits`):
the body size (413), the input values per request (400), the requests parsed and run at once (others wait),
the open connections (503) and the time a connection may sit idle.
"""

import dataclasses
import json
import logging
import socket
import threading
import zlib

from werkzeug.exceptions import HTTPException
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from tfmood.serving.rest import RestApi

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 32 << 20  # fits a 2-minute 12 kHz waveform or a 10-minute log-mel as JSON
_NOT_FOUND_HTML = "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>"
_GZIP = {"gzip", "x-gzip"}  # x-gzip: the old name, which HTTP/1.1 says to treat as gzip
_READ_CHUNK = 1 << 16


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one server spends at most; every field is a `python -m tfmood.serve` flag (docs/serving.md)."""

    max_request_bytes: int = MAX_REQUEST_BYTES  # body size, checked again after gzip inflation -> 413
    max_request_elements: int = 1 << 22         # input values in one predict -> 400 (a 6-min waveform,
    #                                             or a 15-min 96-band mel; bounds the model's memory too)
    max_concurrent_requests: int = 4            # parsed and run at once; the others wait their turn
    max_connections: int = 64                   # open connections; one more is answered 503 and closed
    idle_timeout_seconds: float = 30.0          # a connection that sends nothing for this long is closed

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if not getattr(self, field.name) > 0:
                raise ValueError(f"{field.name} must be > 0. Received {getattr(self, field.name)}.")


class RestApp:
    """The WSGI application: HTTP details around `RestApi.handle`."""

    def __init__(self, api, max_request_bytes=MAX_REQUEST_BYTES, enable_cors=False, limits=None):
        limits = limits or Limits(max_request_bytes=int(max_request_bytes))
        self.api = api
        self.max_request_bytes = limits.max_request_bytes
        self.enable_cors = enable_cors
        self._slots = threading.BoundedSemaphore(limits.max_concurrent_requests)

    def __call__(self, environ, start_response):
        return self.respond(Request(environ))(environ, start_response)

    def respond(self, request):
        if request.method == "OPTIONS":
            origin = request.headers.get("Origin", "")
            return self._cors(Response(status=200 if origin.startswith(("http://", "https://")) else 400))
        try:
            body = self._body(request)
        except _BodyError as error:
            response = self._json(error.status, {"error": error.message})
            response.headers["Connection"] = "close"  # the rest of the body may still be on the wire
            return response
        # The body is read before a slot is taken, so a slow sender holds a connection but no slot.
        with self._slots:
            status, payload = self.api.handle(request.method, _raw_path(request.environ), body)
        if payload is None:
            return Response(_NOT_FOUND_HTML, status=status, content_type="text/html")
        return self._json(status, payload)

    def _body(self, request):
        """The body bytes: at most max_request_bytes, before and after inflation, else a _BodyError."""
        limit = self.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _BodyError(413, f"Request body of {request.content_length} bytes exceeds the limit of "
                                  f"{limit} bytes")
        try:
            body = _read(request.stream, limit + 1)
        except (TimeoutError, socket.timeout):
            raise _BodyError(408, "Timed out while reading the request body") from None
        except (OSError, ValueError, HTTPException) as error:  # bad chunk framing; client gone mid-body
            raise _BodyError(400, f"Malformed request body: {getattr(error, 'description', None) or error}") \
                from None
        if len(body) > limit:
            raise _BodyError(413, f"Request body exceeds the limit of {limit} bytes")
        if request.content_length is not None and len(body) < request.content_length:
            raise _BodyError(400, f"Request body ended after {len(body)} of {request.content_length} bytes")
        for coding in reversed(_content_codings(request.headers.get("Content-Encoding", ""))):
            if coding in _GZIP:
                body = _gunzip(body, limit)
            elif coding != "identity":
                raise _BodyError(415, f"Unsupported Content-Encoding: {coding} (the server inflates gzip)")
        return body

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
                 enable_cors=False, limits=None):
        limits = limits or Limits(max_request_bytes=int(max_request_bytes))
        self.repository, self.limits = repository, limits
        app = RestApp(RestApi(repository, limits.max_request_elements), enable_cors=enable_cors, limits=limits)
        handler = type("Handler", (_Handler,), {"timeout": limits.idle_timeout_seconds})
        self._server = _BoundedServer(host, port, app, handler, limits.max_connections)
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


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler; `timeout` (set per server) closes connections idle that long (socketserver)."""

    timeout = Limits.idle_timeout_seconds


class _BoundedServer(ThreadedWSGIServer):
    """One thread per connection, at most `max_connections` of them; the next gets a 503 and is closed."""

    daemon_threads = True

    def __init__(self, host, port, app, handler, max_connections):
        super().__init__(host, port, app, handler)
        self._connections = threading.BoundedSemaphore(max_connections)
        self.max_connections = max_connections

    def process_request(self, request, client_address):
        if not self._connections.acquire(blocking=False):
            _refuse(request, self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()


class _BodyError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def _refuse(sock, max_connections):
    body = json.dumps({"error": f"The server has {max_connections} open connections, its limit; retry later"},
                      indent=4).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    try:
        sock.settimeout(1.0)
        sock.sendall(head + body)
    except OSError:  # the client is gone already
        pass


def _read(stream, limit):
    """Up to `limit` bytes of `stream`, in chunks (a chunked body has no length to read at once)."""
    parts, size = [], 0
    while size < limit:
        part = stream.read(min(_READ_CHUNK, limit - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _content_codings(header):
    """`Content-Encoding: gzip, identity` -> ["gzip", "identity"], in the order they were applied."""
    return [coding.strip().lower() for coding in header.split(",") if coding.strip()]


def _gunzip(body, limit):
    """Inflate one gzip member, refusing output over `limit` bytes (a small bomb must not fill memory)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise _BodyError(400, f"Failed to decompress gzip request body: {error}") from None
    if len(out) > limit:
        raise _BodyError(413, f"Uncompressed request body exceeds the limit of {limit} bytes")
    if not inflater.eof:
        raise _BodyError(400, "Failed to decompress gzip request body: the gzip stream is truncated")
    return out


def _raw_path(environ):
    """The request path as sent (still %-escaped, no query): TF Serving matches routes before unescaping."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        return environ.get("PATH_INFO", "")
    return raw.split("?", 1)[0]
