"""Real FHIR client libraries against ``escape-fhir serve --deliver`` (issue 15): fhirpy (Python) and
fhir-kit-client (JavaScript, run with node; skipped when node or its install in tests/js is absent). Each
does what a triage integration does: the worklist with its referrals and patients in one request, a count,
paging, a patient's history, accepting a Task with a version-aware update, and a Subscription notification
received on a local listener. Then a listener that fails: the Subscription shows the error and recovers."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

from escape_fhir.fhir import codes
from tests.api.conftest import Server, example, message_headers
from tests.helpers import ROOT

NAMES = ["knee-gp", "back-physio-medium", "back-self-low", "hip-msk-triage", "knee-not-eligible"]
JS = ROOT / "tests" / "js"
Json = dict[str, Any]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("clients")
    env = {"ESCAPE_FHIR_OUTBOX_POLL_SECONDS": "0.1", "ESCAPE_FHIR_OUTBOX_BACKOFF_SECONDS": "0.2"}
    running = Server(f"sqlite:///{folder / 'db.sqlite3'}", folder / "server.log", env, ["--deliver"]).wait()
    for name in NAMES:
        r = httpx.post(f"{running.url}/$process-message", content=example(name), headers=message_headers())
        assert r.status_code == 200, r.text
    yield running
    running.stop()


class Listener:
    """A rest-hook endpoint on loopback: records each request; ``answers`` gives the statuses to send."""

    def __init__(self, answers: Callable[[int], int] = lambda _n: 200, location: str = "") -> None:
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []
        received, answer = self.received, answers

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((self.command, self.path, dict(self.headers), body))
                self.send_response(answer(len(received)))
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = _any

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= count, self.received

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def subscription(endpoint: str, criteria: str, **channel: Any) -> Json:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "triage worklist",
        "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": endpoint, **channel},
    }


def test_fhirpy_triage_integration(server: Server) -> None:
    client = SyncFHIRClient(server.url)
    tasks = client.resources("Task")
    worklist = tasks.search(status="requested").include("Task", "focus").include("Task", "patient").limit(50)
    bundle = worklist.fetch_raw()
    modes = sorted((e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle["entry"])
    matches = [m for m in modes if m[0] == "match"]
    assert len(matches) >= 4 and modes.count(("include", "Patient")) == modes.count(("include", "ServiceRequest"))
    assert modes.count(("include", "ServiceRequest")) == len(matches)
    assert tasks.count() == 5
    assert len({t.id for t in tasks.limit(2).fetch_all()}) == 5  # paged two at a time by the next links

    patient = client.resources("Patient").search(identifier=f"{codes.NHS_NUMBER}|9990000018").first()
    assert patient is not None and patient["name"][0]["family"] == "Whitfield"
    history = client.resources("ServiceRequest").search(patient=patient.id).revinclude("Task", "focus").fetch_raw()
    assert sorted(e["resource"]["resourceType"] for e in history["entry"]) == ["ServiceRequest", "Task"]
    assert client.resources("Observation").search(subject=f"Patient/{patient.id}").count() >= 1
    assert client.resources("QuestionnaireResponse").search(patient=patient.id).count() >= 1

    listener = Listener()
    try:
        sub = client.resource("Subscription", **subscription(listener.url, "Task?status=accepted"))
        sub.save()
        assert sub["status"] == "active"
        task = next(e["resource"] for e in history["entry"] if e["resource"]["resourceType"] == "Task")
        plain = client.resource("Task", **task)
        plain["status"] = "accepted"
        with pytest.raises(OperationOutcome) as refused:  # 428: a plain save() has no version
            plain.save()
        version = task["meta"]["versionId"]
        assert f'If-Match: W/"{version}"' in refused.value.resource["issue"][0]["diagnostics"]
        versioned = SyncFHIRClient(server.url, extra_headers={"If-Match": f'W/"{version}"'})
        accepted = versioned.resource("Task", **task)
        accepted["status"] = "accepted"
        accepted.save()
        assert client.reference("Task", task["id"]).to_resource()["status"] == "accepted"
        listener.wait(1)
        method, path, _headers, body = listener.received[0]
        assert (method, path, body) == ("POST", "/hook", b"")  # no payload: a ping with no body
        sub["status"] = "off"
        sub.save()
    finally:
        listener.close()


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript client test needs it")
    if not (JS / "node_modules" / "fhir-kit-client").is_dir():
        pytest.skip("tests/js has no node_modules: ./dev test runs npm ci there when npm is installed")
    return node


def test_javascript_client_triage_integration(server: Server) -> None:
    node = _node()
    run = subprocess.run(
        [node, str(JS / "triage.mjs"), server.url, "9990000026"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    matches = [m for m in seen["worklist"] if m[0] == "match"]
    assert matches and seen["worklist"].count(["include", "Patient"]) == len(matches)
    assert seen["worklist"].count(["include", "ServiceRequest"]) == len(matches)
    assert seen["count"] == 5 and len(set(seen["paged"])) == 5 and seen["paged"] == sorted(seen["paged"])
    assert seen["referrals"] == ["ServiceRequest", "Task"] and seen["observations"] >= 1 and seen["history"] >= 1
    assert seen["subscriptionStatus"] == "active"
    assert seen["plainUpdate"] == 428 and seen["plainUpdateEtag"] == 'W/"1"' and 'W/"1"' in seen["plainUpdateText"]
    assert seen["updated"] == ["accepted", "2"]
    task = f"Task/{seen['taskId']}"
    assert {"method": "PUT", "url": f"/hook/{task}", "header": "js-client", "resource": task} in seen["notifications"]


def test_a_failing_listener_shows_on_the_subscription_and_it_recovers(server: Server) -> None:
    release = threading.Event()
    listener = Listener(lambda _n: 200 if release.is_set() else 503)
    try:
        created = httpx.post(
            f"{server.url}/Subscription",
            json=subscription(listener.url, "Task?status=rejected", header=["Authorization: Bearer hook-secret"]),
        )
        assert created.status_code == 201, created.text
        sub_id = created.json()["id"]
        task = httpx.get(f"{server.url}/Task", params={"patient.identifier": "9990000050"}).json()["entry"][0]
        task = task["resource"]
        rejected = {**task, "status": "rejected", "statusReason": {"text": "not eligible"}}
        headers = {"If-Match": f'W/"{task["meta"]["versionId"]}"'}
        assert httpx.put(f"{server.url}/Task/{task['id']}", json=rejected, headers=headers).status_code == 200
        listener.wait(1)
        errored = _until(server, sub_id, lambda s: s["status"] == "error")
        assert "HTTP 503" in errored["error"] and "retrying" in errored["error"]
        listener.wait(2)  # retried
        failing = _status(server, sub_id)
        assert failing["status"]["valueCode"] == "error" and "HTTP 503" in failing["error"]["valueString"]
        assert failing["notifications-delivered"]["valueInteger"] == 0
        assert "HTTP 503" in failing["last-error"]["valueString"]
        attempts = len(listener.received)
        release.set()
        listener.wait(attempts + 1)
        recovered = _until(server, sub_id, lambda s: s["status"] == "active")
        assert "error" not in recovered
        assert all(r[2].get("Authorization") == "Bearer hook-secret" for r in listener.received)
        status = _status(server, sub_id)
        assert status["status"]["valueCode"] == "active" and status["notifications-delivered"]["valueInteger"] == 1
        # One event: retried until one attempt succeeded, then never sent again.
        time.sleep(0.5)
        assert len(listener.received) in (attempts + 1, attempts + 2)  # an attempt may have been under way
        assert len({r[1] for r in listener.received}) == 1
    finally:
        listener.close()


def _status(server: Server, sub_id: str) -> dict[str, Json]:
    answer = httpx.get(f"{server.url}/Subscription/{sub_id}/$status")
    assert answer.status_code == 200, answer.text
    return {p["name"]: p for p in answer.json()["parameter"]}


def _until(server: Server, sub_id: str, done: Callable[[Json], bool], timeout: float = 20) -> Json:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found: Json = httpx.get(f"{server.url}/Subscription/{sub_id}").json()
        if done(found):
            return found
        time.sleep(0.1)
    raise AssertionError(f"Subscription/{sub_id} never reached the state: {found}")


def test_bad_subscriptions_are_refused(server: Server) -> None:
    for bad, where in [
        (subscription("ftp://x", "Task?status=requested"), "channel.endpoint"),
        (subscription("http://127.0.0.1:1/", "Task?colour=red"), "criteria"),
        (subscription("http://127.0.0.1:1/", "Basic?code=x"), "criteria"),
        ({**subscription("http://127.0.0.1:1/", "Task?status=requested"), "status": "error"}, "status"),
    ]:
        r = httpx.post(f"{server.url}/Subscription", json=bad)
        assert r.status_code == 422 and where in r.json()["issue"][0]["expression"][0], r.text
    assert httpx.post(f"{server.url}/Subscription", content=b"{").status_code == 400
    assert Path(server.log).exists()


def test_a_notification_never_follows_a_redirect(server: Server) -> None:
    """The endpoint allow-list names where notifications go: a 3xx answer is a refusal, never a second request
    elsewhere with the Subscription's headers (which may carry the endpoint's credential)."""
    elsewhere = Listener()
    redirecting = Listener(lambda _n: 307, location=elsewhere.url)
    try:
        task = httpx.get(f"{server.url}/Task", params={"patient.identifier": "9990000034"}).json()["entry"][0]
        task = task["resource"]
        header = ["Authorization: Bearer hook-secret"]
        created = httpx.post(
            f"{server.url}/Subscription", json=subscription(redirecting.url, f"Task?_id={task['id']}", header=header)
        )
        assert created.status_code == 201, created.text
        rejected = {**task, "status": "rejected", "statusReason": {"text": "not eligible"}}
        headers = {"If-Match": f'W/"{task["meta"]["versionId"]}"'}
        assert httpx.put(f"{server.url}/Task/{task['id']}", json=rejected, headers=headers).status_code == 200
        redirecting.wait(1)
        errored = _until(server, created.json()["id"], lambda s: s["status"] == "error")
        assert "307" in errored["error"]
        time.sleep(0.5)
        assert elsewhere.received == []
    finally:
        redirecting.close()
        elsewhere.close()
