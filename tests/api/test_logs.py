"""Logs that cannot leak or be forged (issue 10 item 5): a real server's whole log is searched for every NHS
number in the examples and test fixtures; control characters from paths and headers are escaped; database
errors do not show their parameters; a 500 echoes the ids and writes one bounded traceback."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import nhs_number
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from escape_fhir.api.logs import FORMAT, TRACEBACK_CHARS, CorrelationFilter, SafeFormatter, bounded_traceback, escape
from escape_fhir.storage.database import make_engine
from tests.api.conftest import Server, message_headers
from tests.helpers import ROOT

_TEN_DIGITS = re.compile(r"(?<!\d)(\d{3})[ -]?(\d{3})[ -]?(\d{4})(?!\d)")


def fixture_nhs_numbers() -> set[str]:
    """Every valid (Modulus 11) NHS number written in the examples and the tests' files."""
    found: set[str] = set()
    files = [p for p in (ROOT / "examples").rglob("*") if p.is_file()]
    files += [p for p in (ROOT / "tests").rglob("*") if p.suffix in (".py", ".json", ".xml")]
    for path in files:
        for match in _TEN_DIGITS.finditer(path.read_text(errors="replace")):
            number = "".join(match.groups())
            if nhs_number.is_valid(number):
                found.add(number)
    return found


def leaked(log: str, numbers: set[str]) -> list[str]:
    digits_only = re.sub(r"[ -]", "", log)  # "999 000 0018" and "999-000-0018" are the same number
    return sorted(n for n in numbers if n in digits_only)


@pytest.fixture(scope="module")
def driven_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real server on loopback, driven with every example message (JSON and XML) and hostile requests."""
    folder = tmp_path_factory.mktemp("logs")
    server = Server(f"sqlite:///{folder / 'db.sqlite3'}", folder / "server.log", {"ESCAPE_FHIR_LOG_LEVEL": "DEBUG"})
    server.wait()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for path in sorted((ROOT / "examples" / "bundles").glob("*.message.*")):
                fmt = path.suffix[1:]
                http.post("/$process-message", content=path.read_bytes(), headers=message_headers(fmt=fmt))
            for number in sorted(fixture_nhs_numbers()):
                http.get(
                    "/ServiceRequest", params={"patient.identifier": f"https://fhir.nhs.uk/Id/nhs-number|{number}"}
                )
                http.get(f"/Patient/{number}")
                http.get(f"/Patient/{number[:3]} {number[3:6]} {number[6:]}")
                http.get("/ServiceRequest", params={"identifier": number + "\x00"})
            knee = json.loads((ROOT / "examples" / "bundles" / "knee-gp.message.json").read_bytes())
            knee["entry"][2]["resource"]["identifier"][0]["value"] += "\x00"
            http.post("/$process-message", content=json.dumps(knee), headers=message_headers())
            http.get("/Patient/x%0A2026-12-03 09:00:00,000 ERROR escape_fhir.api forged line")
            http.get("/Task/%1b[31mred%07", headers={"X-Correlation-ID": "corr\x01\x1b[2J"})
    finally:
        server.stop()
    yield server


def test_the_whole_server_log_holds_no_nhs_number_of_the_fixtures(driven_server: Server) -> None:
    numbers = fixture_nhs_numbers()
    assert len(numbers) >= 5  # the examples' patients at least: the search below is not vacuous
    log = driven_server.log.read_text()
    assert "/$process-message -> 200" in log  # the server did receive the fixtures
    assert leaked(log, numbers) == []


def test_a_newline_in_a_path_cannot_forge_a_log_line(driven_server: Server) -> None:
    lines = driven_server.log.read_text().splitlines()
    assert not [line for line in lines if line.startswith("2026-12-03 09:00:00,000")]
    assert any("x\\n2026-12-03 09:00:00,000 ERROR" in line for line in lines)
    assert not [line for line in lines if "\x1b" in line or "\x07" in line or "\x01" in line]
    assert any("\\x1b[31mred\\x07" in line for line in lines)


def test_every_access_line_carries_both_ids(driven_server: Server) -> None:
    access = [line for line in driven_server.log.read_text().splitlines() if " escape_fhir.access " in line]
    posted = [line for line in access if "POST /$process-message" in line]
    assert posted and all("[request=" in line and "correlation=c-1]" in line for line in posted)


def test_escape_writes_control_characters_as_escapes() -> None:
    assert escape("a\nb\r\x00\x1b\x7f\x85\u2028z") == "a\\nb\\r\\x00\\x1b\\x7f\\x85\\u2028z"
    assert escape("plain text, é and ✓") == "plain text, é and ✓"


def test_database_errors_do_not_show_their_parameters(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(text("SELECT * FROM no_such_table WHERE nhs = :n"), {"n": "9990000018"})
    assert "9990000018" not in str(caught.value) and "hidden due to hide_parameters" in str(caught.value)
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_errors_are_logged_without_their_text(pg_url: str) -> None:
    """PostgreSQL quotes the offending value in its own message, so the logged traceback leaves it out."""
    engine = make_engine(pg_url)
    with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(text("SELECT CAST(:n AS integer)"), {"n": "999 000 0018"})
    engine.dispose()
    assert "0018" in str(caught.value)  # what the text would have leaked
    logged = bounded_traceback(caught.value)
    assert "0018" not in logged and "SELECT CAST" in logged and "not logged" in logged


def _deep(n: int) -> None:
    if n:
        _deep(n - 1)
    raise RuntimeError("a bug, not the client's fault")


def test_a_500_echoes_the_ids_and_logs_one_bounded_traceback(make_client, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = make_client()
    app: FastAPI = client.app  # type: ignore[assignment]

    def boom() -> None:
        _deep(600)  # a traceback of 600 frames, as a RecursionError's would be

    app.add_api_route("/boom", boom)
    app.router.routes.insert(0, app.router.routes.pop())  # before the catch-all /{resource_type}
    caplog.set_level(logging.INFO, logger="escape_fhir")
    caplog.handler.addFilter(CorrelationFilter())  # as the server's handler has: the ids when the line is made
    request_id = str(uuid.uuid4())
    r = client.get("/boom", headers={"X-Request-ID": request_id, "X-Correlation-ID": "corr-500"})
    assert r.status_code == 500 and r.json()["resourceType"] == "OperationOutcome"
    assert r.headers["x-request-id"] == request_id and r.headers["x-correlation-id"] == "corr-500"
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 1
    written = SafeFormatter(FORMAT).format(errors[0])
    assert "RuntimeError: a bug" in written and len(written) < TRACEBACK_CHARS + 2000
    assert "[request=" + request_id in written.splitlines()[0]
    assert all(line.startswith("    | ") for line in written.splitlines()[1:])
