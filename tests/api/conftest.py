"""Fixtures of the endpoint tests: an in-process client on a SQLite file, a real uvicorn server on loopback,
and PostgreSQL schemas (skipped with the reason when 127.0.0.1:5432 does not answer)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from escape_fhir.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from escape_fhir.api import create_app
from tests.helpers import ROOT

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def message_headers(request_id: str | None = None, correlation_id: str = "c-1", fmt: str = "json") -> dict[str, str]:
    return {
        "Content-Type": f"application/fhir+{fmt}",
        "X-Request-ID": request_id or str(uuid.uuid4()),
        "X-Correlation-ID": correlation_id,
    }


def example(name: str, fmt: str = "json") -> bytes:
    return (ROOT / "examples" / "bundles" / f"{name}.message.{fmt}").read_bytes()


MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[MakeClient]:
    clients: list[TestClient] = []

    def make(**settings: Any) -> TestClient:
        settings.setdefault("database_url", f"sqlite:///{tmp_path / 'var' / f'db{len(clients)}.sqlite3'}")
        client = TestClient(create_app(Settings(**settings)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """``escape-fhir serve`` in a subprocess on a free loopback port."""

    def __init__(
        self, database_url: str, log: Path, env: dict[str, str] | None = None, options: Sequence[str] = ()
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "escape_fhir.cli", "serve", "--port", str(self.port)]
        command += ["--database-url", database_url, *options]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )

    def wait(self, timeout: float = 30) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/metadata", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("server")
    running = Server(f"sqlite:///{folder / 'var' / 'db.sqlite3'}", folder / "server.log").wait()
    yield running
    running.stop()


def postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A database URL on a fresh PostgreSQL schema, dropped afterwards (runs do not collide)."""
    if not postgres_answers():
        pytest.skip("PostgreSQL does not answer on 127.0.0.1:5432 (CI and developer machines run one)")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs PostgreSQL on 127.0.0.1:5432 (skipped when none answers)")
