"""Everything we send or answer conforms to what it claims (issue 14), with UK Core 2.0.0 and the BaRS
definitions loaded: every example goes through a real server on loopback (``escape-fhir serve`` with
``--package`` UK Core and BaRS) and through the command line, and every message and answer they produce is
validated: acknowledgements, their OperationOutcomes, refusals, the CapabilityStatement, search Bundles,
Tasks, the asynchronous ``servicerequest-response`` (also against BaRS's response MessageHeader profile,
which it does not claim), and the CLI's translations. No error may be found.

Skipped, each saying why, where ``../shared`` (UK Core, BaRS) is absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from escape_fhir.fhir import codes
from escape_fhir.storage import Database
from escape_fhir.storage.outbox import Outbox
from escape_fhir.validation.api import Validator
from escape_fhir.validation.definitions import default_definitions
from tests.api.conftest import Server, message_headers
from tests.helpers import EXAMPLES, REFERRAL_EXAMPLES, shared

Json = dict[str, Any]
COMMAND = Path(sys.executable).parent / "escape-fhir"
BUNDLES = sorted((EXAMPLES / "bundles").glob("*.message.*"))
BARS_RESPONSE_HEADER = "https://fhir.nhs.uk/StructureDefinition/BARSMessageHeader-servicerequest-response"


@pytest.fixture(scope="module")
def packages() -> list[str]:
    return [str(shared("fhir", "ukcore")), str(shared("fhir", "bars"))]


@pytest.fixture(scope="module")
def validator(packages: list[str]) -> Validator:
    return Validator(default_definitions(packages))


@pytest.fixture(scope="module")
def running(packages: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("conforming")
    options = [arg for p in packages for arg in ("--package", p)]
    server = Server(f"sqlite:///{folder / 'db.sqlite3'}", folder / "server.log", options=options)
    server.database_url = f"sqlite:///{folder / 'db.sqlite3'}"  # type: ignore[attr-defined]
    try:
        yield server.wait(60)
    finally:
        server.stop()


def errors_of(validator: Validator, resource: Json, profiles: tuple[str, ...] = ()) -> list[str]:
    return [f"{i.location}: {i.message}" for i in validator.validate(resource, profiles).errors]


def _post(server: Server, data: bytes, fmt: str = "json") -> httpx.Response:
    headers = {**message_headers(fmt=fmt), "Accept": "application/fhir+json"}
    return httpx.post(f"{server.url}/$process-message", content=data, headers=headers, timeout=60)


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_every_example_message_and_its_acknowledgement_conform(
    running: Server, validator: Validator, path: Path
) -> None:
    data = path.read_bytes()
    fmt = path.suffix.lstrip(".")
    answer = _post(running, data, fmt)
    assert answer.status_code == 200, answer.text
    ack = answer.json()
    assert ack["meta"]["profile"] == [codes.PROFILE_ACKNOWLEDGEMENT]
    assert ack["meta"]["versionId"] == codes.BARS_VERSION_ID
    assert errors_of(validator, ack) == []
    request = json.loads(data) if fmt == "json" else None
    if request is not None:
        assert errors_of(validator, request) == []


def test_update_and_delete_messages_and_their_acknowledgements_conform(
    running: Server, validator: Validator, tmp_path: Path
) -> None:
    source = next(p for p in REFERRAL_EXAMPLES if p.stem == "hip-msk-triage")
    referral = json.loads(source.read_text(encoding="utf-8"))
    referral["id"] = str(uuid.uuid4())  # a referral of its own: new, then update, then delete
    (tmp_path / "r.json").write_text(json.dumps(referral), encoding="utf-8")
    for reason in ("new", "update", "delete"):
        made = _cli("translate", str(tmp_path / "r.json"), "--reason", reason)
        assert made.returncode == 0, made.stderr
        message = json.loads(made.stdout)
        assert errors_of(validator, message) == [], reason
        answer = _post(running, made.stdout.encode())
        assert answer.status_code == 200, answer.text
        assert errors_of(validator, answer.json()) == [], reason


def test_refusals_are_conforming_operation_outcomes_with_bars_codes(running: Server, validator: Validator) -> None:
    bundle = json.loads((EXAMPLES / "bundles" / "knee-gp.message.json").read_bytes())
    cases = {
        400: {**bundle, "id": str(uuid.uuid4()), "type": "collection"},
        422: {**bundle, "id": str(uuid.uuid4()), "meta": {**bundle["meta"], "versionId": "2.0.0"}},
    }
    for status, body in cases.items():
        answer = _post(running, json.dumps(body).encode())
        assert answer.status_code == status, answer.text
        refusal = answer.json()
        assert refusal["resourceType"] == "OperationOutcome"
        assert errors_of(validator, refusal) == []
        codings = [c for i in refusal["issue"] for c in i.get("details", {}).get("coding", [])]
        assert any(c["system"] == "https://fhir.nhs.uk/CodeSystem/http-error-codes" for c in codings), refusal


def test_capability_statement_search_bundles_and_tasks_conform(running: Server, validator: Validator) -> None:
    answer = _post(running, _unique("back-self-low"))
    assert answer.status_code == 200, answer.text
    capability = httpx.get(f"{running.url}/metadata", timeout=30).json()
    assert capability["resourceType"] == "CapabilityStatement"
    assert capability["implementationGuide"] == [codes.IMPLEMENTATION_GUIDE]
    assert errors_of(validator, capability) == []
    queries = (
        "Task?status=requested",
        "ServiceRequest?_count=1",
        "Task?_count=1&_sort=-_lastUpdated",
        "Task?status=requested&_include=Task:focus&_include=Task:patient",
        "Encounter?status=planned",
    )
    for query in queries:
        found = httpx.get(f"{running.url}/{query}", timeout=30)
        assert found.status_code == 200, found.text
        searchset = found.json()
        assert searchset["type"] == "searchset" and searchset.get("entry"), query
        assert errors_of(validator, searchset) == [], query
    unsupported = httpx.get(f"{running.url}/Practitioner?name=x", timeout=30)
    assert unsupported.status_code == 405 and errors_of(validator, unsupported.json()) == []
    task = httpx.get(f"{running.url}/Task?status=requested", timeout=30).json()["entry"][0]["resource"]
    read = httpx.get(f"{running.url}/Task/{task['id']}", timeout=30)
    assert errors_of(validator, read.json()) == []


def test_servicerequest_response_conforms_to_bars(running: Server, validator: Validator) -> None:
    """Triage accepts a referral; the queued ``servicerequest-response`` validates, and its MessageHeader meets
    BaRS's response profile: ``destination.receiver`` and ``sender`` reference Organizations of the Bundle,
    ``response`` names the request, ``meta.versionId`` is the BaRS version."""
    data = _unique("knee-gp")
    request = json.loads(data)
    assert _post(running, data).status_code == 200
    identifier = next(e["resource"] for e in request["entry"] if e["resource"]["resourceType"] == "ServiceRequest")
    params = {"identifier": f"{codes.ID_REFERRAL}|{identifier['identifier'][0]['value']}"}
    sr = httpx.get(f"{running.url}/ServiceRequest", params=params, timeout=30).json()["entry"][0]["resource"]
    task = httpx.get(f"{running.url}/Task", params={"focus": f"ServiceRequest/{sr['id']}"}, timeout=30).json()
    task = task["entry"][0]["resource"]
    headers = {"If-Match": f'W/"{task["meta"]["versionId"]}"', "Content-Type": "application/fhir+json"}
    moved = httpx.put(f"{running.url}/Task/{task['id']}", json={**task, "status": "accepted"}, headers=headers)
    assert moved.status_code == 200, moved.text
    response = _queued_response(running, request["id"])
    assert response["meta"]["versionId"] == codes.BARS_VERSION_ID
    assert errors_of(validator, response) == []
    header = response["entry"][0]["resource"]
    assert errors_of(validator, header, (BARS_RESPONSE_HEADER,)) == []
    urls = {e["fullUrl"]: e["resource"] for e in response["entry"]}
    receiver = urls[header["destination"][0]["receiver"]["reference"]]
    sender = urls[header["sender"]["reference"]]
    assert receiver["resourceType"] == sender["resourceType"] == "Organization"
    original = {e["fullUrl"]: e["resource"] for e in request["entry"]}
    request_header = request["entry"][0]["resource"]
    # The roles reverse: the request's sender receives the response, its receiver sends it.
    assert receiver["identifier"] == original[request_header["sender"]["reference"]]["identifier"]
    assert sender["identifier"] == original[request_header["destination"][0]["receiver"]["reference"]]["identifier"]
    assert header["response"] == {"identifier": request["id"], "code": "ok"}


def test_cli_translations_of_every_referral_conform(packages: list[str], tmp_path: Path) -> None:
    """``translate`` in every Bundle kind and format, checked by ``validate`` with UK Core and BaRS: exit 0."""
    written = []
    for source in REFERRAL_EXAMPLES:
        for kind in ("message", "transaction", "collection"):
            for fmt in ("json", "xml"):
                made = _cli("translate", str(source), "--bundle", kind, "--format", fmt)
                assert made.returncode == 0, made.stderr
                path = tmp_path / f"{source.stem}.{kind}.{fmt}"
                path.write_text(made.stdout, encoding="utf-8")
                written.append(str(path))
    options = [arg for p in packages for arg in ("--package", p)]
    checked = _cli("validate", *options, *written)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert " error " not in checked.stdout and "\nerror" not in checked.stdout


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(COMMAND), *args], capture_output=True, text=True, check=False, timeout=300)


def _unique(name: str) -> bytes:
    """An example message with a new Bundle id and referral identifier, so that it is a referral of its own."""
    bundle: Json = json.loads((EXAMPLES / "bundles" / f"{name}.message.json").read_bytes())
    bundle["id"] = str(uuid.uuid4())
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "ServiceRequest":
            entry["resource"]["identifier"] = [{"system": codes.ID_REFERRAL, "value": str(uuid.uuid4())}]
    return json.dumps(bundle).encode()


def _queued_response(server: Server, request_bundle_id: str) -> Json:
    db = Database.from_url(server.database_url)  # type: ignore[attr-defined]
    try:
        with db.read() as repo:
            outbox = Outbox(repo.session)
            bodies = [outbox.get(m.id, with_body=True) for m in outbox.listing(kind="response")]
    finally:
        db.dispose()
    for message in bodies:
        assert message is not None
        body: Json = json.loads(message.body)
        if body["entry"][0]["resource"]["response"]["identifier"] == request_bundle_id:
            return body
    raise AssertionError(f"no response queued for {request_bundle_id}")
