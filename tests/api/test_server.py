"""The same endpoint through a real uvicorn server (``escape-fhir serve``) on a loopback port."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Server, example, message_headers
from tests.helpers import ROOT, shared_files


def test_a_referral_goes_in_and_triage_sees_it(server: Server) -> None:
    with httpx.Client(base_url=server.url) as http:
        r = http.post("/$process-message", content=example("back-self-low"), headers=message_headers())
        assert r.status_code == 200, r.text
        sr = next(e["resource"] for e in r.json()["entry"] if e["resource"]["resourceType"] == "ServiceRequest")
        tasks = http.get("/Task", params={"focus": f"ServiceRequest/{sr['id']}"}).json()
        assert tasks["total"] == 1
        task = tasks["entry"][0]["resource"]
        decision = task["input"][0]["valueCodeableConcept"]["coding"][0]["code"]
        assert decision == "needs-review"  # low STarT Back risk always needs review
        r = http.put(f"/Task/{task['id']}", json={**task, "status": "accepted"}, headers={"If-Match": 'W/"1"'})
        assert r.status_code == 200 and r.headers["etag"] == 'W/"2"'


def test_concurrent_deliveries_of_one_message_make_one_referral(server: Server) -> None:
    sent = json.loads(example("hip-msk-triage"))
    sent["id"] = "concurrent-sqlite"
    sent["entry"][1]["resource"]["identifier"][0]["value"] = "5e0b2d36-7c1f-4f60-9a4e-2f6f0e1c0001"
    body = json.dumps(sent).encode()

    def deliver(n: int) -> httpx.Response:
        return httpx.post(
            f"{server.url}/$process-message", content=body, headers=message_headers(f"conc-{n}"), timeout=30
        )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(deliver, range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    ident = "https://w3id.org/escape-fhir/Id/referral|5e0b2d36-7c1f-4f60-9a4e-2f6f0e1c0001"
    assert httpx.get(f"{server.url}/ServiceRequest", params={"identifier": ident}).json()["total"] == 1


@pytest.mark.parametrize(
    "path",
    shared_files("fhir", "bars", "Examples"),
    ids=lambda p: p.name[:24],
)
def test_bars_examples_never_crash_the_server(server: Server, path: Path) -> None:
    fmt = "xml" if path.suffix == ".xml" else "json"
    r = httpx.post(
        f"{server.url}/$process-message", content=path.read_bytes(), headers=message_headers(fmt=fmt), timeout=30
    )
    assert r.status_code in (200, 400, 422) and r.json()["resourceType"] in ("Bundle", "OperationOutcome")
    assert httpx.get(f"{server.url}/metadata").status_code == 200


def test_bad_input_over_the_wire(server: Server) -> None:
    huge = b'{"resourceType": "Bundle", "entry": [' + b'{"x": 1},' * 700_000 + b"]}"
    r = httpx.post(f"{server.url}/$process-message", content=huge, headers=message_headers(), timeout=30)
    assert r.status_code == 413 and r.json()["resourceType"] == "OperationOutcome"
    r = httpx.post(f"{server.url}/$process-message", content=b"<Bundle", headers=message_headers(fmt="xml"))
    assert r.status_code == 400


def test_serve_refuses_a_public_address_without_tokens(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "escape_fhir.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--database-url",
            f"sqlite:///{tmp_path}/x.db",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2 and "without bearer tokens" in done.stderr
