"""What keeps a request from hurting the server: the body-size limit, one-line errors.

- :class:`BodyLimit` (ASGI middleware) refuses a body over ``max_bytes`` with 413
  before the app reads it: from its Content-Length header at once, or, for a body
  sent in chunks, as soon as the bytes received pass the limit. Memory per request
  is thus bounded by ``max_bytes``.
- Every refusal is a 4xx response ``{"error": "<one line>"}``: :class:`ApiError` for
  the app's own checks, and handlers turning FastAPI's validation errors and
  Starlette's HTTP errors (unknown path, wrong method) into the same form.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

#: the largest request body accepted (bytes): a drawing at the project's limit of
#: 20,000 points, written as [x, y, t] with long numbers, fits
MAX_BODY_BYTES = 2 << 20


class ApiError(Exception):
    """A refused request: HTTP ``status`` and the one-line ``message`` sent back."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JSONResponse:
    """``{"error": message}`` with ``status``; the message is kept to one line."""
    line = " ".join(str(message).split())
    return JSONResponse({"error": line}, status_code=status)


def _where(loc) -> str:
    """A pydantic error location ('body', 'strokes', 0, 3) -> ``strokes[0][3]``."""
    parts = [p for p in loc if p != "body"]
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "the body"


def validation_message(errors) -> str:
    """The first of FastAPI's validation errors as one line saying what to send."""
    if not errors:
        return "invalid request"
    e = errors[0]
    if e.get("type") == "json_invalid":
        return f"the request body is not valid JSON ({e.get('ctx', {}).get('error', 'parse error')})"
    if tuple(e.get("loc", ())) == ("body",):
        return ("the request body must be a JSON object sent with Content-Type: application/json"
                if e.get("type") != "missing" else "the request needs a JSON body")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{_where(e.get('loc', ()))}: {e.get('msg', 'invalid value')}{more}"


def install_error_handlers(app: FastAPI) -> None:
    """Make every refusal of ``app`` a one-line ``{"error": ...}`` response."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return error_response(422 if exc.errors() and exc.errors()[0].get("type") != "json_invalid"
                              else 400, validation_message(exc.errors()))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # a bug: say so, keep serving
        return error_response(500, f"internal error ({type(exc).__name__}: {exc}); please report it")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return error_response(404, f"no such page or endpoint: {request.url.path}")
        if exc.status_code == 405:
            return error_response(405, f"{request.method} is not allowed on {request.url.path}")
        return error_response(exc.status_code, str(exc.detail))


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 (see module)."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> JSONResponse:
        return error_response(413, f"the request body is larger than {self.max_bytes:,} bytes, "
                                   "the server's limit; send fewer or shorter strokes")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await error_response(400, "bad Content-Length header")(scope, receive, send)
            if size > self.max_bytes:
                return await self._too_large()(scope, receive, send)
        # Read the body here (bounded), then hand it to the app in one message.
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                return await self._too_large()(scope, receive, send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # http.disconnect, when it comes

        return await self.app(scope, replay, send)


class HostCheck:
    """ASGI middleware: answer 400 to a request whose Host header is not one of ``hosts``
    (a web page elsewhere reaching a loopback server through DNS rebinding)."""

    def __init__(self, app, hosts: list[str]):
        self.app = app
        self.hosts = {h.lower() for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in self.hosts:
                return await error_response(400, f"Host {host!r} is not served here; open the "
                                                 "address the server printed")(scope, receive, send)
        return await self.app(scope, receive, send)
