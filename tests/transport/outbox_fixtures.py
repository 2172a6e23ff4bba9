"""Loopback fixtures of the outbox tests: a receiver (``escape-fhir serve`` on a chosen port), a scripted HTTP
peer in front of it (answers 503/429, forwards, cuts the connection after the receiver answered, or holds the
answer), the sender's database and its runner. Nothing leaves 127.0.0.1; every wait is a bounded loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from escape_fhir.storage import Database
from escape_fhir.storage.outbox import Outbox, OutboxMessage
from escape_fhir.transport.outbox import ClientTransport, Policy, Runner
from tests.api.conftest import Server, free_port
from tests.helpers import ROOT

Json = dict[str, Any]
REFERRAL_ID = "https://w3id.org/escape-fhir/Id/referral"
#: Fast retries and short leases, so the failure scenarios take seconds.
FAST = {"ESCAPE_FHIR_OUTBOX_BACKOFF_SECONDS": "0.05", "ESCAPE_FHIR_OUTBOX_LEASE_SECONDS": "1.5"}
FAST_POLICY = Policy(max_attempts=20, backoff=0.05, backoff_max=0.5, lease=1.5)


def referral_message(name: str = "knee-gp") -> tuple[bytes, str]:
    """An example referral message made unique: a new Bundle id and a new referral identifier."""
    bundle: Json = json.loads((ROOT / "examples" / "bundles" / f"{name}.message.json").read_bytes())
    bundle["id"] = str(uuid.uuid4())
    value = str(uuid.uuid4())
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "ServiceRequest":
            res["identifier"] = [{"system": REFERRAL_ID, "value": value}]
    return json.dumps(bundle).encode(), value


class ServerOn(Server):
    """``escape-fhir serve`` on a given port (so a sender can be pointed at it before it starts)."""

    def __init__(self, port: int, database_url: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.database_url = database_url
        command = [
            sys.executable,
            "-m",
            "escape_fhir.cli",
            "serve",
            "--port",
            str(port),
            "--database-url",
            database_url,
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=log.open("wb")
        )

    def count(self, identifier: str | None = None) -> int:
        params = {"identifier": f"{REFERRAL_ID}|{identifier}"} if identifier else {}
        total: int = httpx.get(f"{self.url}/ServiceRequest", params=params, timeout=10).json()["total"]
        return total


class Peer:
    """A scripted HTTP peer on loopback. Each POST takes the next action (``forward`` when none is left):

    * ``(status, retry_after)``: answer that status with an OperationOutcome (and ``Retry-After``);
    * ``"forward"``: pass the request to ``upstream`` and its answer back;
    * ``"cut"``: pass it on, wait for the answer, then close the connection without a byte of it;
    * ``"hold"``: pass it on, set ``holding`` and keep the answer until ``release`` is set.
    """

    def __init__(self, upstream: str = "") -> None:
        self.upstream = upstream
        self.actions: list[Any] = []
        self.seen: list[tuple[str, str]] = []  # (X-Request-ID, action) of every request
        self.holding, self.release = threading.Event(), threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                action = peer.actions.pop(0) if peer.actions else "forward"
                peer.seen.append((self.headers.get("X-Request-ID", ""), str(action)))
                if isinstance(action, tuple):
                    self._answer(*peer.refusal(action, self.headers))
                    return
                answer = peer.forward(self.path, dict(self.headers), body)
                if action == "cut":
                    self.close_connection = True
                    return
                if action == "hold":
                    peer.holding.set()
                    peer.release.wait(30)
                self._answer(*answer)

            def _answer(self, status: int, headers: dict[str, str], content: bytes) -> None:
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except OSError:
                    pass  # the client is gone (killed)

        return Handler

    def refusal(self, action: tuple[int, int | None], headers: Any) -> tuple[int, dict[str, str], bytes]:
        status, retry_after = action
        outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]}
        sent = {"Content-Type": "application/fhir+json", "X-Request-ID": headers.get("X-Request-ID", "")}
        sent["X-Correlation-ID"] = headers.get("X-Correlation-ID", "")
        if retry_after is not None:
            sent["Retry-After"] = str(retry_after)
        return status, sent, json.dumps(outcome).encode()

    def forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        kept = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length", "connection")}
        response = httpx.post(f"{self.upstream}{path}", content=body, headers=kept, timeout=30)
        names = ("content-type", "x-request-id", "x-correlation-id")
        return response.status_code, {k: v for k, v in response.headers.items() if k in names}, response.content

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def peer() -> Iterator[Peer]:
    running = Peer()
    yield running
    running.stop()


class Sender:
    """The sending escape-fhir instance: its database (outbox) and runners, in-process or as processes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = f"sqlite:///{folder / 'sender.sqlite3'}"
        self.db = Database.from_url(self.url)
        self.db.migrate()
        self.processes: list[subprocess.Popen[bytes]] = []

    def enqueue(self, data: bytes, to: str) -> int:
        from escape_fhir.service.outbound import enqueue_referral

        return enqueue_referral(self.db, data, to).id

    def messages(self) -> list[OutboxMessage]:
        with self.db.read() as repo:
            return Outbox(repo.session).listing()

    def runner(self, policy: Policy = FAST_POLICY) -> Runner:
        return Runner(self.db, ClientTransport(), policy)

    def spawn_runner(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        process = spawn_runner(self.folder / f"runner{len(self.processes)}.log", self.url, env)
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
        self.db.dispose()


def spawn_runner(log: Path, database_url: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``escape-fhir outbox run`` on a database, as a process of its own (fast retries, short lease)."""
    command = [sys.executable, "-m", "escape_fhir.cli", "outbox", "run", "--database-url", database_url]
    return subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **FAST, **(env or {})}, stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )


@pytest.fixture
def sender(tmp_path: Path) -> Iterator[Sender]:
    made = Sender(tmp_path)
    yield made
    made.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Callable[..., ServerOn]]:
    """Start a receiver (``escape-fhir serve``) on a port, SQLite file of its own; stopped afterwards."""
    started: list[ServerOn] = []

    def start(port: int | None = None, env: dict[str, str] | None = None) -> ServerOn:
        name = f"receiver{len(started)}"
        db = f"sqlite:///{tmp_path / name / 'db.sqlite3'}"
        (tmp_path / name).mkdir()
        server = ServerOn(port or free_port(), db, tmp_path / name / "server.log", env)
        started.append(server)
        server.wait()
        return server

    yield start
    for server in started:
        server.stop()


def until(condition: Callable[[], bool], timeout: float = 30, step: float = 0.05) -> None:
    """Wait for ``condition`` (a bounded loop, never a timed assertion); fail with the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


def deliver_all(sender: Sender, runner: Runner, timeout: float = 30) -> None:
    """Run ``runner`` until no message is pending or being sent (bounded)."""

    def settled() -> bool:
        runner.run_once()
        return all(m.state in ("delivered", "dead") for m in sender.messages())

    until(settled, timeout)
