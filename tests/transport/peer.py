"""A scripted receiver on loopback: answers each POST with the next scripted reply and records what it got.

For the retry rules of the BaRS sender (nhs-standards.md 1.2), which a real escape-fhir server cannot be
made to break on purpose: 503, 429 with Retry-After, 408, a gateway page with no OperationOutcome, a 200
without the echoed ids, 400 and 409 duplicate, in a chosen order.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HTTP_ERROR_CODES = "https://fhir.nhs.uk/CodeSystem/http-error-codes"


def outcome(code: str, bars_code: str, text: str = "scripted") -> dict[str, Any]:
    """A UKCore-style OperationOutcome with one error issue carrying a BaRS code (nhs-standards.md 1.7)."""
    details = {"coding": [{"system": HTTP_ERROR_CODES, "code": bars_code}]}
    issue = {"severity": "error", "code": code, "diagnostics": text, "details": details}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    echo: bool = True  # echo X-Request-ID and X-Correlation-ID, as a BaRS receiver does
    raw: bytes = b""  # a non-FHIR body (e.g. a proxy's HTML page) instead of ``body``


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


class ScriptedPeer:
    """Replies in order; the last reply repeats once the script is used up."""

    def __init__(self, replies: list[Reply], port: int = 0) -> None:
        self.replies = list(replies)
        self.received: list[Received] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> ScriptedPeer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def next_reply(self, received: Received) -> Reply:
        with self._lock:
            self.received.append(received)
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def _handler(peer: ScriptedPeer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = peer.next_reply(Received(self.path, headers, body))
            data = reply.raw or (json.dumps(reply.body).encode() if reply.body is not None else b"")
            self.send_response(reply.status)
            kind = "text/html" if reply.raw else "application/fhir+json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            if reply.echo:
                self.send_header("X-Request-ID", headers.get("x-request-id", ""))
                self.send_header("X-Correlation-ID", headers.get("x-correlation-id", ""))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler
