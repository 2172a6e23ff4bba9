"""Fixtures of the page tests: a real ``escape-fhir serve`` on loopback with staff accounts made by the real
``escape-fhir staff add``, and Debian's Chromium driven by Playwright (which cannot download its own browsers
here). Without Chromium the browser tests skip saying so; ``.ci/run`` installs it, so CI runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from escape_fhir.api import create_app
from escape_fhir.pages import staff
from escape_fhir.settings import Scope, Settings
from tests.api.conftest import Server

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CHROMIUM = Path(os.environ.get("ESCAPE_FHIR_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "correct horse battery staple"
#: username -> scopes; "nurse" triages, "viewer" only reads, "dev" validates.
ACCOUNTS = {"nurse": ("read", "triage"), "viewer": ("read",), "dev": ("validate",)}
#: axe-core rule tags of WCAG 2.0, 2.1 and 2.2, levels A and AA (NHS services must meet WCAG 2.2 AA).
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    """The app in process (TestClient) on a fresh SQLite file, with a "nurse" account; ``make(**settings)``."""
    staff_file = tmp_path / "staff.json"
    staff.add(staff_file, "nurse", PASSWORD, frozenset({Scope.READ, Scope.TRIAGE}), "Nurse")
    made: list[TestClient] = []

    def build(**settings: Any) -> TestClient:
        settings = {"database_url": f"sqlite:///{tmp_path / 'db.sqlite3'}", "staff_file": staff_file, **settings}
        client = TestClient(create_app(Settings(**settings)))
        client.__enter__()
        made.append(client)
        return client

    yield build
    for client in made:
        client.__exit__(None, None, None)


def add_staff(staff_file: Path, username: str, scopes: tuple[str, ...], name: str) -> None:
    command = [sys.executable, "-m", "escape_fhir.cli", "staff", "add", username, "--password-stdin"]
    command += ["--staff-file", str(staff_file), "--name", name]
    for scope in scopes:
        command += ["--scope", scope]
    done = subprocess.run(command, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="session")
def staff_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("staff") / "staff.json"
    for username, scopes in ACCOUNTS.items():
        add_staff(path, username, scopes, username.capitalize())
    return path


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, staff_file: Path) -> Iterator[Server]:
    """The server the browser talks to (no bearer tokens: the API is open on loopback, the pages are not)."""
    folder = tmp_path_factory.mktemp("pages-server")
    env = {"ESCAPE_FHIR_STAFF_FILE": str(staff_file), "ESCAPE_FHIR_SESSION_SECRET": "a" * 40}
    running = Server(f"sqlite:///{folder / 'db.sqlite3'}", folder / "server.log", env=env).wait()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, site: Server) -> Iterator[Any]:
    context = browser.new_context(base_url=site.url)
    opened = context.new_page()
    yield opened
    context.close()


def accessible(page: Any) -> None:
    """No axe-core violation of WCAG 2.2 AA on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_TAGS}})
    assert results.violations_count == 0, f"{page.url}\n{results.generate_report()}"


def sign_in(page: Any, username: str) -> None:
    page.goto("/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def reference_of(page: Any) -> str:
    found = re.search(r"ESCAPE-\d{6}", page.locator("#reference").inner_text())
    assert found, page.content()
    return found.group(0)
