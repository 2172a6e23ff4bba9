"""Request logging: one line per request with its ids and status, never patient data.

Only the method, the path without its query (queries may carry NHS numbers: ``patient.identifier=...``),
the status, the time taken, ``X-Request-ID`` and ``X-Correlation-ID`` are logged. Both ids are echoed on
every response (BaRS, nhs-standards.md 1.2), a 500 included. Every log record made while a request runs
carries both ids (``%(request_id)s``, ``%(correlation_id)s``).

Log lines cannot be forged: request-derived text (a path with ``%0A``, a header) has its control characters
escaped (``\\n``, ``\\x00``), and the lines of a traceback are indented under their record, so no text a
client sends starts a line of its own. An unexpected error is logged once, with a bounded traceback.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from contextvars import ContextVar
from typing import Any

from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

correlation: ContextVar[str] = ContextVar("correlation", default="-")
request_ids: ContextVar[str] = ContextVar("request_ids", default="-")
log = logging.getLogger("escape_fhir.access")
errors_log = logging.getLogger("escape_fhir.api")
MAX_ID = 200
#: Frames and characters of the one traceback an unexpected error writes (a RecursionError has ~1000 frames).
TRACEBACK_FRAMES = 12
TRACEBACK_CHARS = 8000
#: What an id may be to be echoed in a response header (BaRS ids are GUIDs).
VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_DATABASE_DRIVERS = frozenset({"psycopg", "psycopg2", "sqlite3", "psycopg_binary"})
#: Ten digits, spaced or not, could be an NHS number typed into a path: never logged.
_NHS_NUMBER_LIKE = re.compile(r"\d{3}[ -]?\d{3}[ -]?\d{4}")
#: C0 and C1 controls, DEL and the Unicode line and paragraph separators: each could end a log line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
FORMAT = "%(asctime)s %(levelname)s %(name)s [request=%(request_id)s correlation=%(correlation_id)s] %(message)s"


def escape(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``), on one line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = escape(correlation.get())
        record.request_id = escape(request_ids.get())
        return True


class SafeFormatter(logging.Formatter):
    """Escapes the message and indents each (escaped) traceback line, so one record is one entry."""

    def format(self, record: logging.LogRecord) -> str:
        cached, record.exc_text = record.exc_text, None  # another handler's unindented text is not reused
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        text = bounded_traceback(ei[1]) if ei[1] is not None else super().formatException(ei)
        return "\n".join(f"    | {escape(line)}" for line in text.splitlines())

    def formatStack(self, stack_info: str) -> str:
        return "\n".join(f"    | {escape(line)}" for line in stack_info.splitlines())


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
    handler.setFormatter(SafeFormatter(FORMAT))
    root = logging.getLogger("escape_fhir")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))[:MAX_ID]
    return ""


def bounded_traceback(exc: BaseException) -> str:
    """The last frames of ``exc``'s traceback and of its causes, at most :data:`TRACEBACK_CHARS` long.

    A database error's own text is left out (PostgreSQL quotes the offending value: ``invalid input syntax
    for type integer: "<NHS number>"``, ``Key (...)=(...) already exists``); its SQL statement is kept.
    Anything shaped like an NHS number is redacted from the rest.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts = [
        "Traceback (most recent call last):\n"
        + "".join(traceback.format_tb(e.__traceback__, limit=-TRACEBACK_FRAMES))
        + _exception_line(e)
        for e in reversed(chain)
    ]
    text = _NHS_NUMBER_LIKE.sub("<redacted>", "\n\nwhich led to\n\n".join(parts))
    if len(text) <= TRACEBACK_CHARS:
        return text
    return f"... ({len(text) - TRACEBACK_CHARS} characters left out)\n{text[-TRACEBACK_CHARS:]}"


def _exception_line(exc: BaseException) -> str:
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if isinstance(exc, DBAPIError) or type(exc).__module__.split(".")[0] in _DATABASE_DRIVERS:
        statement = getattr(exc, "statement", None)
        sql = f" [SQL: {statement[:300]}]" if isinstance(statement, str) else ""
        return f"{name}: (the database's text is not logged: it may quote patient data){sql}"
    return f"{name}: {exc}"


def log_unexpected(exc: BaseException, method: str, path: str) -> None:
    """Our bug: one ERROR record with a bounded, escaped traceback; no request body, no query."""
    where = _NHS_NUMBER_LIKE.sub("<redacted>", path)
    errors_log.error("unexpected %s on %s %s", type(exc).__name__, method, where, exc_info=exc)


def server_error(request: Request) -> ASGIApp:
    """The 500 OperationOutcome (imported late: the error handlers import this module)."""
    from escape_fhir.api.errors import internal_error

    return internal_error(request)


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
        request_token = request_ids.set(request_id or "-")
        # Echoed only when visible ASCII, as a GUID is: other octets are not sent back to the client.
        echo = [(b"x-request-id", request_id), (b"x-correlation-id", correlation_id)]
        echo_bytes = [(k, v.encode("ascii")) for k, v in echo if v and VISIBLE_ASCII.fullmatch(v)]
        status = 500
        started_response = False
        started = time.perf_counter()

        async def send_with_ids(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                message["headers"] = [*message.get("headers", []), *echo_bytes]
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        except Exception as exc:  # our bug: answered here, so the ids are echoed and nothing logs it again
            log_unexpected(exc, scope["method"], scope["path"])
            if not started_response:
                await server_error(Request(scope))(scope, receive, send_with_ids)
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
            request_ids.reset(request_token)
