"""The hub's "to contact" list in a real browser against a real ``escape-fhir serve --hub``, with an axe-core
WCAG 2.2 AA check of each state of the page: a referral posted to the hub for a site that takes referrals
only by email becomes an entry; a clinician finds it from the worklist, marks it done and sees it leave the
open list (and the FHIR API shows it completed); a reason is needed to mark one no longer needed; a second
clinician with a stale page is told someone else changed the entry first."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import ROOT, Server, message_headers
from tests.pages.conftest import PASSWORD, accessible, sign_in
from tests.sites.directory import csv_bytes, row
from tests.transport.outbox_fixtures import referral_message


@pytest.fixture(scope="module")
def hub_site(tmp_path_factory: pytest.TempPathFactory, staff_file: Path) -> Iterator[Server]:
    """A hub whose directory has one site for LS6 knee/hip GP referrals, reached only by email."""
    folder = tmp_path_factory.mktemp("pages-hub")
    url = f"sqlite:///{folder / 'db.sqlite3'}"
    env = {"ESCAPE_FHIR_STAFF_FILE": str(staff_file), "ESCAPE_FHIR_SESSION_SECRET": "b" * 40}
    running = Server(url, folder / "server.log", env=env, options=["--hub"]).wait()
    site = row("email-only", name="Leeds Community Physio", referral_email="physio.referrals@leeds.example")
    del site["bars_endpoint"]
    directory = folder / "sites.csv"
    directory.write_bytes(csv_bytes([site]))
    command = [sys.executable, "-m", "escape_fhir.cli", "sites", "import", str(directory), "--database-url", url]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    yield running
    running.stop()


@pytest.fixture
def hub_page(browser: Any, hub_site: Server) -> Iterator[Any]:
    context = browser.new_context(base_url=hub_site.url)
    yield context.new_page()
    context.close()


def active_ids(hub: Server) -> set[str]:
    found = httpx.get(f"{hub.url}/CommunicationRequest", params={"status": "active"}, timeout=10).json()
    return {e["resource"]["id"] for e in found.get("entry") or []}


def new_entry(hub: Server) -> tuple[str, str]:
    """Post a GP referral to the hub; the id of the to-contact entry it made and the referral's reference."""
    before = active_ids(hub)
    data, _ = referral_message("knee-gp")
    answer = httpx.post(f"{hub.url}/$process-message", content=data, headers=message_headers(), timeout=30)
    assert answer.status_code == 200, answer.text
    (made,) = active_ids(hub) - before
    request = httpx.get(f"{hub.url}/CommunicationRequest/{made}", timeout=10).json()
    found = re.search(r"ESCAPE-\d{6}", request["payload"][0]["contentString"])
    assert found
    return made, found.group(0)


def test_staff_mark_an_entry_done_and_it_leaves_the_open_list(hub_page: Any, hub_site: Server) -> None:
    page = hub_page
    entry, reference = new_entry(hub_site)
    page.goto("/to-contact")
    assert "/sign-in" in page.url  # patient data only after signing in, then back to this page
    page.get_by_label("Username").fill("nurse")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert page.locator("h1").inner_text() == "Referrals to contact"
    page.goto("/triage")
    page.get_by_role("link", name=re.compile(r"\d+ referrals? to contact by email or phone")).click()
    assert page.locator("h1").inner_text() == "Referrals to contact"
    accessible(page)
    card = page.locator(f"#entry-{entry}")
    text = card.inner_text()
    assert "Leeds Community Physio" in text and "email: physio.referrals@leeds.example" in text
    assert f"Refer {reference} to Leeds Community Physio" in text

    card.get_by_role("button", name=re.compile("^No longer needed")).click()  # no reason given
    assert page.title().startswith("Error: ")
    assert (
        page.locator(f"#reason-{entry}-error")
        .inner_text()
        .endswith("Enter why the site no longer needs to be contacted")
    )
    accessible(page)

    card = page.locator(f"#entry-{entry}")
    card.get_by_label(re.compile("^What was done")).fill("Emailed the referral and the eligibility decision")
    card.get_by_role("button", name=re.compile("^Mark done")).click()
    assert page.locator("#notice").inner_text() == f"The entry for referral {reference} is marked done."
    assert page.locator(f"#entry-{entry}").count() == 0  # off the open list
    accessible(page)
    stored = httpx.get(f"{hub_site.url}/CommunicationRequest/{entry}", timeout=10).json()
    assert stored["status"] == "completed"
    assert stored["note"][-1]["text"].endswith("by Nurse: Emailed the referral and the eligibility decision")

    page.get_by_role("link", name="Done").click()
    done = page.locator(f"#entry-{entry}")
    assert "Emailed the referral and the eligibility decision" in done.inner_text()
    accessible(page)
    done.get_by_role("link", name=reference).click()
    assert page.locator("h1").inner_text() == f"Referral {reference}"


def test_a_stale_page_is_told_someone_else_changed_the_entry_first(browser: Any, hub_site: Server) -> None:
    first, second = browser.new_context(base_url=hub_site.url), browser.new_context(base_url=hub_site.url)
    try:
        one, two = first.new_page(), second.new_page()
        entry, _ = new_entry(hub_site)
        for opened in (one, two):
            sign_in(opened, "nurse")
            opened.goto("/to-contact")
        one.locator(f"#entry-{entry}").get_by_role("button", name=re.compile("^Mark done")).click()
        assert one.locator(f"#entry-{entry}").count() == 0

        card = two.locator(f"#entry-{entry}")  # rendered before the entry was done
        card.get_by_label(re.compile("^Why it is no longer needed")).fill("The patient moved away")
        card.get_by_role("button", name=re.compile("^No longer needed")).click()
        assert "Someone else changed this entry after you opened the list: it is now done." in two.content()
        assert two.locator(f"#entry-{entry}").count() == 0
        accessible(two)
        stored = httpx.get(f"{hub_site.url}/CommunicationRequest/{entry}", timeout=10).json()
        assert stored["status"] == "completed" and "statusReason" not in stored
    finally:
        first.close()
        second.close()
