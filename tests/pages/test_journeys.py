"""The journeys end to end in a real browser against a real server, with an axe-core WCAG 2.2 AA check of
every page on the way: a person refers themselves, the referral appears on the triage worklist, a clinician
accepts it there, and the referrer's copy (the Task and ServiceRequest read through the FHIR API) shows the
decision; a second clinician with a stale page is told someone else decided first."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import Server
from tests.pages.conftest import accessible, reference_of, sign_in

BACK_YES = [
    "Has the person had recurrent episodes of low back pain?",
    "Is the low back pain non-specific?",
    "Is the person independently mobile?",
    "Can the person join a group exercise programme with minimal supervision?",
    "Would the person benefit from a group rehabilitation programme?",
    "Does the person wish to take part in the programme?",
]
BACK_NO = [
    "Does the person have radicular (sciatic) leg pain?",
    "Does the person have any contraindications to exercise?",
]
#: STarT Back items 1-4 agree, 5-8 disagree, bothersomeness "slightly": total 4, subscore 0, medium risk.
STARTBACK = {
    "Back pain spread down the leg(s) in the last 2 weeks": "Agree",
    "Shoulder or neck pain in the last 2 weeks": "Agree",
    "Walked only short distances because of back pain": "Agree",
    "Dressed more slowly than usual because of back pain in the last 2 weeks": "Agree",
    "Feels it is not really safe to be physically active": "Disagree",
    "Worrying thoughts much of the time": "Disagree",
    "Feels the back pain is terrible and will not get better": "Disagree",
    "Not enjoying the things once enjoyed": "Disagree",
    "Overall bothersomeness of back pain in the last 2 weeks": "Slightly",
}


def answer(page: Any, question: str, choice: str) -> None:
    page.get_by_role("group", name=question).get_by_label(choice, exact=True).check()


def refer_back_pain(page: Any, family: str, check: bool = True, postcode: str = "LS1 4AP") -> str:
    """A self-referral for back pain through the pages; its reference. ``check``: axe on every page."""
    page.goto("/self-referral")
    check and accessible(page)
    page.get_by_label("Back pain").check()
    page.get_by_role("button", name="Continue").click()
    assert page.locator("h1").inner_text() == "About your pain"
    check and accessible(page)
    page.get_by_role("button", name="Continue").click()  # nothing answered: the NHS.UK error summary
    assert page.locator(".nhsuk-error-summary").is_visible()
    assert page.title().startswith("Error: ")
    check and accessible(page)
    page.get_by_label("Lower back").check()
    page.get_by_label("How many months has the person had these symptoms?").fill("6")
    for question in BACK_YES:
        answer(page, question, "Yes")
    for question in BACK_NO:
        answer(page, question, "No")
    for question, choice in STARTBACK.items():
        answer(page, question, choice)
    page.get_by_role("button", name="Continue").click()
    assert page.locator("h1").inner_text() == "Your details"
    check and accessible(page)
    page.get_by_label("First name").fill("Ann")
    page.get_by_label("Last name").fill(family)
    page.get_by_label("Day").fill("3")
    page.get_by_label("Month").fill("4")
    page.get_by_label("Year").fill("1970")
    page.get_by_label("Postcode").fill(postcode)
    page.get_by_label("Email address").fill("ann@example.org")
    page.get_by_label("NHS number (optional)").fill("999 000 0018")
    page.get_by_role("button", name="Continue").click()
    assert page.locator("h1").inner_text() == "Check your answers before sending"
    assert "Slightly" in page.content() and postcode in page.content()
    check and accessible(page)
    page.get_by_role("button", name="Send referral").click()
    assert page.locator("h1").inner_text() == "Referral sent"
    check and accessible(page)
    return reference_of(page)


def open_referral(page: Any, reference: str) -> None:
    page.goto("/triage")
    page.get_by_role("link", name=reference).click()
    assert page.locator("h1").inner_text() == f"Referral {reference}"


def test_self_referral_is_accepted_on_the_worklist_and_the_referrer_sees_it(page: Any, site: Server) -> None:
    reference = refer_back_pain(page, "Okafor")
    assert "class finder" in page.content()  # no site in the directory for LS1: how to find a local class
    assert page.get_by_role("link", name="Find the ESCAPE-pain sites near you").get_attribute("href") == (
        "/find-a-site?postcode=LS1+4AP"
    )

    page.goto("/triage")  # patient data only after signing in
    assert page.url.startswith(f"{site.url}/sign-in")
    accessible(page)
    sign_in(page, "nurse")
    assert page.locator("h1").inner_text() == "Triage worklist"
    accessible(page)
    row = page.locator("tr", has=page.get_by_role("link", name=reference))
    assert "Ann Okafor" in row.inner_text() and "Backs" in row.inner_text() and "Medium" in row.inner_text()
    page.get_by_label("STarT Back risk").select_option("high")
    page.get_by_role("button", name="Apply filters").click()
    assert page.get_by_role("link", name=reference).count() == 0  # filtered out: it is medium risk
    page.get_by_label("STarT Back risk").select_option("medium")
    page.get_by_label("Programme").select_option("back")
    page.get_by_role("button", name="Apply filters").click()
    page.get_by_role("link", name=reference).click()
    accessible(page)
    text = page.locator("main").inner_text()
    assert "9990000018" in text and "Self-referral" in text
    assert "STarT Back risk" in text and "medium risk" in text  # the criterion and the scores
    assert "Total 4, psychosocial subscore 0" in text
    page.get_by_text("Where each fact came from").click()
    assert "Bundle.entry" in page.locator("details").inner_text()  # the Task's fact-source inputs

    page.get_by_role("button", name="Accept referral").click()
    assert page.locator("#notice").inner_text() == f"Referral {reference} accepted."
    assert page.locator("#task-status").inner_text() == "accepted"
    accessible(page)

    # The referrer's copy: the Task and its ServiceRequest through the FHIR API.
    task_id = page.url.rsplit("/", 1)[1]
    task = httpx.get(f"{site.url}/Task/{task_id}").json()
    assert task["status"] == "accepted"
    assert "accepted on the triage worklist by Nurse" in task["note"][-1]["text"]
    sr = httpx.get(f"{site.url}/{task['focus']['reference']}").json()
    assert sr["status"] == "active"


def test_a_stale_page_is_told_someone_else_decided_first(browser: Any, site: Server) -> None:
    first, second = browser.new_context(base_url=site.url), browser.new_context(base_url=site.url)
    try:
        one, two = first.new_page(), second.new_page()
        reference = refer_back_pain(one, "Stale", check=False)
        for opened in (one, two):
            sign_in(opened, "nurse")
            open_referral(opened, reference)
        one.get_by_label("Reason (needed to reject)").fill("Sciatica needs a physiotherapy assessment first")
        one.get_by_role("button", name="Reject referral").click()
        assert one.locator("#task-status").inner_text() == "rejected"

        two.get_by_role("button", name="Accept referral").click()  # rendered before the rejection
        assert "Someone else changed this referral after you opened it: it is now rejected" in two.content()
        assert two.locator("#task-status").inner_text() == "rejected"
        accessible(two)
        task_id = two.url.rsplit("/", 1)[1]
        task = httpx.get(f"{site.url}/Task/{task_id}").json()
        assert task["status"] == "rejected"
        assert task["statusReason"]["text"] == "Sciatica needs a physiotherapy assessment first"
        assert httpx.get(f"{site.url}/{task['focus']['reference']}").json()["status"] == "revoked"
    finally:
        first.close()
        second.close()


def test_rejecting_needs_a_reason_shown_beside_the_field(page: Any) -> None:
    reference = refer_back_pain(page, "Reason", check=False)
    sign_in(page, "nurse")
    open_referral(page, reference)
    page.get_by_role("button", name="Reject referral").click()
    assert page.locator("#reason-error").inner_text().endswith("Enter why the referral is not accepted")
    assert page.locator("#task-status").inner_text() == "requested"
    accessible(page)


def test_a_reader_sees_the_referral_but_cannot_decide(page: Any) -> None:
    reference = refer_back_pain(page, "Reader", check=False)
    sign_in(page, "viewer")
    open_referral(page, reference)
    page.get_by_role("button", name="Accept referral").click()
    assert page.locator("h1").inner_text() == "You cannot use this page"
    assert "triage permission" in page.content()


def test_the_journey_works_without_javascript(browser: Any, site: Server) -> None:
    context = browser.new_context(base_url=site.url, java_script_enabled=False)
    try:
        reference = refer_back_pain(context.new_page(), "NoScript", check=False)
        assert reference.startswith("ESCAPE-")
    finally:
        context.close()


@pytest.mark.parametrize("username", ["nurse", "dev"])
def test_sign_in_and_out(page: Any, username: str) -> None:
    page.goto("/sign-in")
    accessible(page)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.locator(".nhsuk-error-summary").is_visible()
    accessible(page)
    sign_in(page, username)
    page.get_by_role("button", name="Sign out").click()
    assert page.locator("h1").inner_text() == "You have signed out"
    accessible(page)
    page.goto("/triage")
    assert "/sign-in" in page.url
