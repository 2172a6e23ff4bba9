"""mesh-sandbox, NHS England's locally runnable MESH API (DESIGN.md "Reference peers"), for the MESH tests.

It runs from ``.venv-mesh`` (``scripts/mesh-sandbox-venv``; it pins its own FastAPI, so it cannot share the
project's venv) under uvicorn on a free loopback port, over plain HTTP, with:

- ``AUTH_MODE=full``: every request's ``NHSMESH`` Authorization header is checked, HMAC and all, against
  the mailbox password and ``SHARED_KEY`` (nhs-standards.md 6.3, "Authentication");
- ``STORE_MODE=memory``: its canned mailboxes X26ABC1, X26ABC2 and X26ABC3 (password ``password``), empty
  inboxes, nothing on disk. ``DELETE /admin/reset`` empties them between tests.

Where ``.venv-mesh`` is missing the tests skip and say how to set it up, except in CI (``CI`` set), where
``.ci/run`` creates it and a missing sandbox is a failure.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.api.conftest import free_port
from tests.helpers import ROOT

UVICORN = ROOT / ".venv-mesh" / "bin" / "uvicorn"
SHARED_KEY = "escape-fhir-sandbox-key"
PASSWORD = "password"
SENDER, RECEIVER, OTHER = "X26ABC1", "X26ABC2", "X26ABC3"
START_SECONDS = 30


class Sandbox:
    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        requests.delete(f"{self.url}/admin/reset", timeout=10).raise_for_status()

    def report(self, mailbox: str, linked_message_id: str, workflow_id: str) -> str:
        """Put an 'undeliverable' report about ``linked_message_id`` in ``mailbox``'s inbox (testing only)."""
        body = {
            "mailbox_id": mailbox,
            "code": "14",
            "description": "Message not collected by recipient after 5 days",
            "workflow_id": workflow_id,
            "linked_message_id": linked_message_id,
        }
        got = requests.post(f"{self.url}/messageexchange/admin/report", json=body, timeout=10)
        got.raise_for_status()
        message_id: str = got.json()["message_id"]
        return message_id


def _available() -> None:
    if UVICORN.exists():
        return
    reason = f"mesh-sandbox is not set up in {UVICORN.parent.parent}: run scripts/mesh-sandbox-venv"
    if os.environ.get("CI"):
        pytest.fail(reason + " (.ci/run does this before the tests)")
    pytest.skip(reason)


@contextmanager
def running(log: Path) -> Iterator[Sandbox]:
    """The sandbox on a free loopback port until the block ends."""
    _available()
    env = {**os.environ, "AUTH_MODE": "full", "STORE_MODE": "memory", "SHARED_KEY": SHARED_KEY}
    env.pop("MESH_CLIENT_SHARED_KEY", None)
    for _attempt in range(3):  # the port may be taken between choosing and binding it
        port = free_port()
        with log.open("ab") as out:
            process = subprocess.Popen(
                [str(UVICORN), "mesh_sandbox.api:app", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                cwd=log.parent,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            if _answers(f"http://127.0.0.1:{port}", process):
                yield Sandbox(f"http://127.0.0.1:{port}")
                return
        finally:
            _stop(process)
    pytest.fail(f"mesh-sandbox did not start; its output is in {log}:\n{log.read_text(errors='replace')[-3000:]}")


def _answers(url: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return True
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
