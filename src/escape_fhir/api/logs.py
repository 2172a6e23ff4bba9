"""Request logging: one line per request with its ids and status, never patient data.

Only the method, the path without its query (queries may carry NHS numbers: ``patient.identifier=...``),
the status, the time taken, ``X-Request-ID`` and ``X-Correlation-ID`` are logged. Both ids are echoed on
every response (BaRS, nhs-standards.md 1.2). Every log record made while a request runs carries its
correlation id (``%(correlation_id)s``).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

correlation: ContextVar[str] = ContextVar("correlation", default="-")
log = logging.getLogger("escape_fhir.access")
MAX_ID = 200
#: Ten digits, spaced or not, could be an NHS number typed into a path: never logged.
_NHS_NUMBER_LIKE = re.compile(r"\d{3}[ -]?\d{3}[ -]?\d{4}")
FORMAT = "%(asctime)s %(levelname)s %(name)s [correlation=%(correlation_id)s] %(message)s"


class CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation.get()
        return True


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged, not the stream it was when configured
    (a caller that swaps stderr, as a test harness or an embedding program does, keeps getting the logs)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(level: str) -> None:
    """Log to stderr with the correlation id on every line (the ``serve`` and ``outbox run`` commands call this)."""
    handler = _Stderr()
    handler.addFilter(CorrelationFilter())
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger("escape_fhir")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))[:MAX_ID]
    return ""


class RequestLog:
    """ASGI middleware: echo the BaRS ids and log each request once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id, correlation_id = _header(scope, b"x-request-id"), _header(scope, b"x-correlation-id")
        token = correlation.set(correlation_id or "-")
        echo = [(b"x-request-id", request_id.encode()), (b"x-correlation-id", correlation_id.encode())]
        echo = [(k, v) for k, v in echo if v]
        status = 500
        started = time.perf_counter()

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *echo]
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            log.info(
                "%s %s -> %s in %.1f ms request=%s",
                scope["method"],
                _NHS_NUMBER_LIKE.sub("<redacted>", scope["path"]),
                status,
                elapsed,
                request_id or "-",
            )
            correlation.reset(token)
