"""The hub's "to contact" page over HTTP in process: entries made by a real hub intake (a referral posted to
``$process-message`` for a site taking referrals only by email), the order of the open list, marking an entry
done or no longer needed through the same rules as ``PUT /CommunicationRequest/{id}`` (read back through the
FHIR API), and the form's refusals: a missing reason, a stale or bad version, an unknown entry, no CSRF token,
a reader without the triage scope."""

from __future__ import annotations

import re
from typing import Any

import lxml.html
import pytest

from tests.api.conftest import message_headers
from tests.pages.test_pages_http import errors, sign_in, token
from tests.sites.directory import load, row
from tests.transport.outbox_fixtures import referral_message

Json = dict[str, Any]


def email_site(site_id: str, covers: str = "LS6") -> dict[str, str]:
    site = row(site_id, covers=covers, referral_email=f"referrals@{site_id}.example", name=f"Clinic {site_id}")
    del site["bars_endpoint"]
    return site


def refer(client: Any) -> None:
    data, _ = referral_message("knee-gp")  # a GP referral for a patient in LS6 2AB
    assert client.post("/$process-message", content=data, headers=message_headers()).status_code == 200


def hub_with_entry(make: Any, **settings: Any) -> Any:
    client = make(hub=True, **settings)
    load(client.app.state.db, [email_site("email-only")])
    refer(client)
    assert sign_in(client).status_code == 200
    return client


def active(client: Any, status: str = "active") -> list[Json]:
    found = client.get("/CommunicationRequest", params={"status": status}).json()
    return [e["resource"] for e in found.get("entry") or []]


def cards(html: str) -> list[str]:
    """The text of each entry on the page, in order."""
    tree = lxml.html.fromstring(html)
    return [" ".join(" ".join(c.itertext()).split()) for c in tree.find_class("nhsuk-card")]


def form_of(html: str, request_id: str) -> dict[str, str]:
    """The hidden fields of an entry's form, as the browser would send them."""
    tree = lxml.html.fromstring(html)
    (form,) = tree.xpath(f'//form[@action="/to-contact/{request_id}"]')
    return {i.get("name"): i.get("value") for i in form.xpath(".//input[@type='hidden']")}


def summary(html: str) -> list[str]:
    tree = lxml.html.fromstring(html)
    return [" ".join(li.text_content().split()) for li in tree.xpath("//div[@class='nhsuk-error-summary']//li")]


def test_an_entry_of_a_hub_intake_is_listed_with_what_to_do(make: Any) -> None:
    client = hub_with_entry(make)
    (request,) = active(client)
    page = client.get("/to-contact")
    assert page.status_code == 200
    (card,) = cards(page.text)
    assert "Clinic email-only" in card
    assert "How to contact email: referrals@email-only.example" in card
    assert "Refer ESCAPE-000001 to Clinic email-only" in card and "by email at referrals@email-only.example" in card
    assert "Urgent" not in card
    assert "Why ESCAPE-pain site takes referrals only by email or phone" in card
    task_id = client.get("/Task", params={"identifier": "ESCAPE-000001"}).json()["entry"][0]["resource"]["id"]
    assert f'<a href="/triage/{task_id}">ESCAPE-000001</a>' in page.text
    assert client.get(f"/triage/{task_id}").status_code == 200
    assert form_of(page.text, request["id"])["version"] == "1"
    worklist = client.get("/triage").text
    assert re.search(r'<a href="/to-contact">1 referral to contact by email or phone</a>', worklist)
    assert 'class="nhsuk-header__navigation-link" href="/to-contact"' in worklist  # hub: in the navigation


def test_without_the_hub_the_navigation_has_no_link_and_the_page_says_there_is_nothing(make: Any) -> None:
    client = make()
    assert sign_in(client).status_code == 200
    worklist = client.get("/triage").text
    assert 'href="/to-contact"' not in worklist  # not a hub, nothing to contact: no link, no count
    page = client.get("/to-contact")
    assert page.status_code == 200 and cards(page.text) == []
    assert "There is nothing to contact" in page.text


def test_marking_an_entry_done_takes_it_off_the_open_list(make: Any) -> None:
    client = hub_with_entry(make)
    (request,) = active(client)
    page = client.get("/to-contact").text
    form = {**form_of(page, request["id"]), "action": "done", "note": "emailed the referral to the site"}
    answer = client.post(f"/to-contact/{request['id']}", data=form, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/to-contact"
    after = client.get("/to-contact").text
    assert "The entry for referral ESCAPE-000001 is marked done." in after
    assert cards(after) == [] and "There is nothing to contact" in after
    assert active(client) == []
    (done,) = active(client, "completed")
    assert done["meta"]["versionId"] == "2"
    assert done["note"][-1]["authorString"] == "Nurse"
    assert done["note"][-1]["text"] == "marked done on the to-contact list by Nurse: emailed the referral to the site"
    assert done["payload"] == request["payload"]  # the hub's record of what to do is unchanged
    (card,) = cards(client.get("/to-contact", params={"show": "done"}).text)
    assert "ESCAPE-000001" in card and "emailed the referral to the site" in card
    assert "Mark done" not in card  # nothing more to do with it
    assert (
        'href="/to-contact">0 referrals to contact by email or phone</a>: nothing to do' in client.get("/triage").text
    )


def test_no_longer_needed_needs_a_reason(make: Any) -> None:
    client = hub_with_entry(make)
    (request,) = active(client)
    form = {**form_of(client.get("/to-contact").text, request["id"]), "action": "revoke", "note": "kept"}
    answer = client.post(f"/to-contact/{request['id']}", data={**form, "reason": "  "})
    assert answer.status_code == 400
    assert errors(answer.text) == ["Error: Enter why the site no longer needs to be contacted"]
    assert summary(answer.text) == ["Enter why the site no longer needs to be contacted"]
    assert f'href="#reason-{request["id"]}"' in answer.text and f'id="reason-{request["id"]}"' in answer.text
    assert ">kept</textarea>" in answer.text  # what was typed is kept
    assert [r["status"] for r in active(client)] == ["active"]
    answer = client.post(f"/to-contact/{request['id']}", data={**form, "reason": "the patient moved to York"})
    assert answer.status_code == 200 and "is marked no longer needed" in answer.text
    (revoked,) = active(client, "revoked")
    assert revoked["statusReason"] == {"text": "the patient moved to York"}
    (card,) = cards(client.get("/to-contact", params={"show": "revoked"}).text)
    assert "Reason the patient moved to York" in card


def test_a_stale_page_is_told_someone_else_changed_the_entry_first(make: Any) -> None:
    client = hub_with_entry(make)
    (request,) = active(client)
    form = form_of(client.get("/to-contact").text, request["id"])
    url = f"/to-contact/{request['id']}"
    assert client.post(url, data={**form, "action": "done"}).status_code == 200
    stale = client.post(url, data={**form, "action": "revoke", "reason": "duplicate"})  # the same page again
    assert stale.status_code == 409
    assert errors(stale.text) == [
        "Error: Someone else changed this entry after you opened the list: it is now done. "
        "Check the list again before you act."
    ]
    assert active(client, "revoked") == [] and len(active(client, "completed")) == 1
    # The API's own PUT with the same version: 412, the rule the page follows.
    put = client.put(
        f"/CommunicationRequest/{request['id']}",
        json={**request, "status": "revoked", "statusReason": {"text": "x"}},
        headers={"If-Match": 'W/"1"'},
    )
    assert put.status_code == 412
    # A crafted form naming the current version of an entry already done: refused, not done twice.
    again = client.post(url, data={**form, "version": "2", "action": "done"})
    assert again.status_code == 409 and "it is now done" in again.text
    assert len(active(client, "completed")[0]["note"]) == 1


@pytest.mark.parametrize(
    ("entry", "changes", "code", "message"),
    [
        ("unknown", {"action": "done"}, 404, "There is no entry with this address on the to-contact list."),
        ("x" * 65, {"action": "done"}, 404, "There is no entry with this address on the to-contact list."),
        ("known", {"action": "archive"}, 400, "Choose done or no longer needed"),
        ("known", {"action": "done", "version": "abc"}, 400, "This page is out of date"),
        ("known", {"action": "done", "version": ""}, 400, "This page is out of date"),
        ("known", {"action": "done", "version": "9" * 40}, 400, "This page is out of date"),
        ("known", {"action": "done", "version": "7"}, 409, "Someone else changed this entry"),
    ],
)
def test_bad_forms_get_a_clear_error_on_the_page(
    make: Any, entry: str, changes: dict[str, str], code: int, message: str
) -> None:
    client = hub_with_entry(make)
    (request,) = active(client)
    form = {**form_of(client.get("/to-contact").text, request["id"]), **changes}
    request_id = request["id"] if entry == "known" else entry
    answer = client.post(f"/to-contact/{request_id}", data=form)
    assert answer.status_code == code
    (shown,) = errors(answer.text)
    assert shown.startswith(f"Error: {message}")
    assert answer.text.count("nhsuk-error-summary__list") == 1
    assert [r["status"] for r in active(client)] == ["active"]


def test_forms_without_the_csrf_token_are_refused(make: Any) -> None:
    client = hub_with_entry(make)
    (request,) = active(client)
    form = {**form_of(client.get("/to-contact").text, request["id"]), "action": "done"}
    for sent in ({**form, "csrf_token": "forged"}, {k: v for k, v in form.items() if k != "csrf_token"}):
        answer = client.post(f"/to-contact/{request['id']}", data=sent)
        assert answer.status_code == 403 and "session has expired" in answer.text
    assert [r["status"] for r in active(client)] == ["active"]


def test_a_reader_sees_the_list_but_cannot_act(make: Any) -> None:
    client = hub_with_entry(make)
    (request,) = active(client)
    from escape_fhir.pages import staff
    from escape_fhir.settings import Scope
    from tests.pages.conftest import PASSWORD

    staff.add(client.app.state.settings.staff_file, "viewer", PASSWORD, frozenset({Scope.READ}), "Viewer")
    client.post("/sign-out", data={"csrf_token": token(client.get("/to-contact").text)})
    assert sign_in(client, "viewer").status_code == 200
    page = client.get("/to-contact")
    assert page.status_code == 200 and "ESCAPE-000001" in page.text
    assert '<form method="post" action="/to-contact/' not in page.text  # no forms without triage
    answer = client.post(
        f"/to-contact/{request['id']}", data={"csrf_token": token(page.text), "version": "1", "action": "done"}
    )
    assert answer.status_code == 403 and "triage permission" in answer.text
    assert [r["status"] for r in active(client)] == ["active"]


@pytest.mark.parametrize("path", ["/to-contact", "/to-contact?show=done"])
def test_the_page_needs_signing_in(make: Any, path: str) -> None:
    client = make(hub=True)
    load(client.app.state.db, [email_site("email-only")])
    refer(client)
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in?next=")
    answer = client.post("/to-contact/anything", data={"action": "done"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in?next=")


def test_urgent_entries_come_first_then_the_oldest(make: Any) -> None:
    """A re-route of a referral whose site was contacted already adds an urgent entry (tell the site it is
    withdrawn): it comes before older routine entries, which keep their order."""
    client = make(hub=True)
    load(client.app.state.db, [email_site("a-sector", covers="LS6 2"), email_site("b-district", covers="LS6")])
    refer(client)  # ESCAPE-000001 to a-sector (sector before district)
    refer(client)  # ESCAPE-000002 to a-sector
    assert sign_in(client).status_code == 200
    first = next(r for r in active(client) if "ESCAPE-000001" in r["payload"][0]["contentString"])
    form = {**form_of(client.get("/to-contact").text, first["id"]), "action": "done"}
    assert client.post(f"/to-contact/{first['id']}", data=form).status_code == 200
    task = client.get("/Task", params={"identifier": "ESCAPE-000001"}).json()["entry"][0]["resource"]
    body = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "no class until May"}]}
    headers = {"Content-Type": "application/fhir+json", "If-Match": f'W/"{task["meta"]["versionId"]}"'}
    assert client.post(f"/Task/{task['id']}/$route", json=body, headers=headers).status_code == 200
    shown = cards(client.get("/to-contact").text)
    assert len(shown) == 3
    assert shown[0].startswith("Urgent Clinic a-sector") and "referral ESCAPE-000001, sent to them earlier" in shown[0]
    assert shown[1].startswith("Clinic a-sector") and "Refer ESCAPE-000002" in shown[1]
    assert shown[2].startswith("Clinic b-district") and "Refer ESCAPE-000001" in shown[2]
    assert "3 referrals to contact" in client.get("/triage").text
