"""Fuzzing the endpoint (issue 10): mutated example Bundles and generated requests over every route.

Every answer must be below 500, every 4xx an OperationOutcome, and every example answered within the
profile's deadline (conftest.py). Runs in-process on a real SQLite file through the ASGI app.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from escape_fhir import pages
from escape_fhir.api import create_app
from escape_fhir.settings import Settings
from tests.fuzz.strategies import EXAMPLES, mangled_bytes, mutated_bundle

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.routing import APIRoute
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    client = TestClient(create_app(Settings(database_url=f"sqlite:///{folder / 'db.sqlite3'}")))
    with client:
        for path in EXAMPLES[:2]:  # something to read, search and update
            client.post("/$process-message", content=path.read_bytes(), headers=_ids("application/fhir+json"))
        yield client


def _ids(content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, "X-Request-ID": str(uuid.uuid4()), "X-Correlation-ID": "fuzz"}


#: The first path segments of the pages (escape_fhir.pages), which answer people with HTML pages.
PAGE_SEGMENTS = {route.path.split("/")[1] for router in pages.ROUTERS for route in router.routes}


def check(r: Any) -> None:
    """Never a 5xx; a 4xx is an OperationOutcome (JSON unless XML was asked for), or on a page's path an HTML
    page saying what is wrong."""
    assert r.status_code < 500, r.text[:1000]
    if r.status_code >= 400:
        if r.request.url.path.split("/")[1] in PAGE_SEGMENTS:
            assert r.headers["content-type"].startswith("text/html"), r.text[:500]
            assert "<h1" in r.text or "nhsuk-error-message" in r.text, r.text[:1000]
        elif r.headers.get("content-type", "").startswith("application/fhir+xml"):
            assert b"<OperationOutcome" in r.content
        else:
            assert r.json()["resourceType"] == "OperationOutcome", r.text[:500]


@given(body=mutated_bundle())
def test_mutated_messages(app_client: TestClient, body: bytes) -> None:
    check(app_client.post("/$process-message", content=body, headers=_ids("application/fhir+json")))


@given(body=mutated_bundle(kind="transaction"))
def test_mutated_transactions(app_client: TestClient, body: bytes) -> None:
    check(app_client.post("/", content=body, headers=_ids("application/fhir+json")))


@given(body=mutated_bundle(kind="collection"))
def test_mutated_bundles_validated(app_client: TestClient, body: bytes) -> None:
    check(app_client.post("/$validate", content=body, headers=_ids("application/fhir+json")))


@given(sample=mangled_bytes(), target=st.sampled_from(["/$process-message", "/$validate", "/"]))
def test_mangled_json_and_xml(app_client: TestClient, sample: tuple[bytes, str], target: str) -> None:
    body, fmt = sample
    check(app_client.post(target, content=body, headers=_ids(f"application/fhir+{fmt}")))


# ---- generated requests over every route ----------------------------------------------------------------
def _routes() -> list[tuple[str, str]]:
    """(method, path template) of every API route of the app, through included routers."""
    app = create_app(Settings(database_url="sqlite:///:memory:", migrate=False))
    found: set[tuple[str, str]] = set()
    pending: list[Any] = list(app.routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute):
            found |= {(method, route.path) for method in route.methods}
        for attribute in ("routes", "original_router"):  # a router, or FastAPI's wrapper of an included one
            inner = getattr(route, attribute, None)
            pending += inner if isinstance(inner, list) else getattr(inner, "routes", [])
    return sorted(found)


ROUTES = _routes()
segments = st.one_of(
    st.sampled_from(
        [
            "ServiceRequest",
            "Task",
            "Patient",
            "Questionnaire",
            "Bundle",
            "$validate",
            "1",
            "x" * 65,
            "²",
            "9" * 40,
            "a b",
            "%00",
            "..",
            "_history",
            "9990000018",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/?#"), min_size=1, max_size=12),
)
param_names = st.sampled_from(
    [
        "_count",
        "_offset",
        "_sort",
        "_lastUpdated",
        "_format",
        "identifier",
        "status",
        "patient",
        "patient.identifier",
        "owner",
        "focus",
        "performer",
        "url",
        "profile",
        "unknown",
        "_count ",
    ]
)
param_values = st.one_of(
    st.sampled_from(
        [
            "",
            "1",
            "²",
            "-1",
            "9" * 30,
            "json",
            "xml",
            "text/html",
            "le9999-12-31",
            "9999",
            "10000",
            "gt2026-02-30",
            "eq2026-01-01T25:00:00Z",
            ",".join(["a|b"] * 150),
            "x\x00",
            "-_lastUpdated",
        ]
    ),
    st.text(max_size=20),
)
header_values = st.one_of(
    st.sampled_from(
        [
            'W/"1"',
            'W/"²"',
            '"1"',
            "*",
            "application/fhir+xml",
            "application/fhir+json",
            "text/plain",
            "application/fhir+json;q=0",
            "*/*",
            "",
            "x" * 300,
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    method, template = draw(st.sampled_from(ROUTES))
    path = template
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + quote(draw(segments), safe="") + path[end + 1 :]
    params = draw(st.lists(st.tuples(param_names, param_values), max_size=4))
    names = draw(st.sets(st.sampled_from(["Accept", "Content-Type", "If-Match", "X-Request-ID", "X-Correlation-ID"])))
    # raw bytes: a client may send any octets in a header value (RFC 9110 section 5.5), UTF-8 included
    headers = [(name.encode(), draw(header_values).encode("utf-8")) for name in sorted(names)]
    body = draw(
        st.one_of(
            st.none(),
            st.sampled_from(EXAMPLES).map(lambda p: p.read_bytes()),
            st.binary(max_size=64),
            st.just(json.dumps({"resourceType": "Task", "id": "x", "status": "accepted"}).encode()),
        )
    )
    return {"method": method, "url": path, "params": params, "headers": headers, "content": body}


@given(request=requests())
def test_generated_requests_over_every_route(app_client: TestClient, request: dict[str, Any]) -> None:
    check(app_client.request(**request))


def test_the_route_pass_covers_every_route() -> None:
    assert {path for _, path in ROUTES} >= {
        "/$process-message",
        "/",
        "/{resource_type}",
        "/Task/{task_id}",
        "/metadata",
        "/{resource_type}/{resource_id}/_history/{version}",
    }
