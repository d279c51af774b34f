"""TF Serving's error statuses and their HTTP codes (`model_servers/http_server.cc` ToHTTPStatusCode)."""

HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501, "INTERNAL": 500,
    "UNAVAILABLE": 503, "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}


class RestError(Exception):
    """A failed request: `code` is a TF status name, answered as `{"error": message}` with its HTTP status."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self):
        return HTTP_STATUS.get(self.code, 500)

    @classmethod
    def invalid(cls, message):
        return cls("INVALID_ARGUMENT", message)

    @classmethod
    def not_found(cls, message):
        return cls("NOT_FOUND", message)
