"""The pages over HTTP in process (no browser): sign-in protection, CSRF, cookies, redirects, rate limits,
repeated self-referral submission and what the self-referral stores (the same QuestionnaireResponses as any
referral), read back through the FHIR API as the referrer's system would."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from escape_fhir.pages import staff

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery staple"
BACK_ANSWERS = {
    "q-affected-sites": "lower-back",
    "q-symptom-duration-months": "6",
    "q-recurrent-episodes": "yes",
    "q-radicular-pain": "no",
    "q-non-specific-low-back-pain": "yes",
    "q-independently-mobile": "yes",
    "q-contraindications-to-exercise": "no",
    "q-able-to-join-group": "yes",
    "q-would-benefit-from-group": "yes",
    "q-wishes-to-take-part": "yes",
    **{f"q-{code}": "agree" for code in ("91340-0", "91341-8", "91342-6", "91343-4")},
    **{f"q-{code}": "disagree" for code in ("91344-2", "91345-9", "91346-7", "91347-5")},
    "q-91348-3": "slightly",
}
DETAILS = {
    "given": "Ann",
    "family": "Example",
    "birth-day": "3",
    "birth-month": "4",
    "birth-year": "1970",
    "postcode": "LS1 4AP",
    "email": "ann@example.org",
    "nhs": "",
}


def token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


def errors(html: str) -> list[str]:
    """The inline error messages of a page, as a screen reader reads them ("Error: ...")."""
    tree = lxml.html.fromstring(html)
    return [" ".join(e.text_content().split()) for e in tree.find_class("nhsuk-error-message")]


def self_refer(client: TestClient, details: dict[str, str] | None = None) -> Any:
    csrf = token(client.get("/self-referral").text)
    client.post("/self-referral", data={"csrf_token": csrf, "pathway": "back"})
    client.post("/self-referral/questions", data={"csrf_token": csrf, **BACK_ANSWERS})
    client.post("/self-referral/details", data={"csrf_token": csrf, **(details or DETAILS)})
    return client.post("/self-referral/check", data={"csrf_token": csrf})


def sign_in(client: TestClient, username: str = "nurse", password: str = PASSWORD, goto: str = "/triage") -> Any:
    csrf = token(client.get("/sign-in").text)
    return client.post("/sign-in", data={"csrf_token": csrf, "username": username, "password": password, "next": goto})


@pytest.mark.parametrize("path", ["/triage", "/triage/abc", "/figures", "/figures.csv", "/validator"])
def test_staff_pages_need_signing_in(make: Any, path: str) -> None:
    client = make()
    assert self_refer(client).status_code == 200  # there is a patient to leak
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/sign-in?next=")
    assert "Example" not in answer.text


def test_the_session_cookie_is_encrypted_http_only_and_same_site(make: Any) -> None:
    client = make()
    csrf = token(client.get("/self-referral").text)
    answer = client.post("/self-referral", data={"csrf_token": csrf, "pathway": "back"}, follow_redirects=False)
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    client.post("/self-referral/questions", data={"csrf_token": csrf, **BACK_ANSWERS})
    answer = client.post("/self-referral/details", data={"csrf_token": csrf, **DETAILS}, follow_redirects=False)
    assert "Example" not in answer.headers["set-cookie"] and "LS1" not in answer.headers["set-cookie"]


def test_forms_without_the_csrf_token_are_refused(make: Any) -> None:
    client = make()
    assert self_refer(client).status_code == 200
    assert sign_in(client).status_code == 200
    task_id = re.findall(r'href="/triage/([^"]+)"', client.get("/triage").text)[0]
    answer = client.post(f"/triage/{task_id}", data={"csrf_token": "forged", "version": "1", "action": "accept"})
    assert answer.status_code == 403
    assert "session has expired" in answer.text
    assert client.get(f"/Task/{task_id}").json()["status"] == "requested"
    other = make()
    assert other.post("/sign-in", data={"username": "nurse", "password": PASSWORD}).status_code == 403


def test_sign_in_never_redirects_to_another_site(make: Any) -> None:
    client = make()
    for goto in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        answer = sign_in(make(), goto=goto) if client else None
        assert answer is not None and answer.url.path == "/triage", goto


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(make: Any) -> None:
    client = make()
    wrong, unknown = sign_in(client, password="wrong password here"), sign_in(client, username="nobody")
    assert wrong.status_code == unknown.status_code == 400
    assert (
        errors(wrong.text)
        == errors(unknown.text)
        == ["Error: Enter a username and password that match a staff account"]
    )


def test_sign_in_attempts_are_limited(make: Any) -> None:
    client = make()
    for _ in range(10):
        assert sign_in(client, password="wrong password here").status_code == 400
    assert sign_in(client).status_code == 429  # even the right password, until the window passes


def test_a_removed_account_ends_its_sessions(make: Any, tmp_path: Path) -> None:
    client = make()
    assert sign_in(client).url.path == "/triage"
    staff.remove(tmp_path / "staff.json", "nurse")
    answer = client.get("/triage", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in")


def test_a_repeated_submission_stores_one_referral_with_the_answers(make: Any) -> None:
    client = make()
    csrf = token(client.get("/self-referral").text)
    client.post("/self-referral", data={"csrf_token": csrf, "pathway": "back"})
    client.post("/self-referral/questions", data={"csrf_token": csrf, **BACK_ANSWERS})
    client.post("/self-referral/details", data={"csrf_token": csrf, **DETAILS})
    cookies = dict(client.cookies)
    first = client.post("/self-referral/check", data={"csrf_token": csrf})
    client.cookies.clear()
    client.cookies.update(cookies)  # the second press of "Send", from the page before the first answer
    second = client.post("/self-referral/check", data={"csrf_token": csrf})
    reference = re.findall(r'id="reference">(ESCAPE-\d+)<', first.text)
    assert reference and reference == re.findall(r'id="reference">(ESCAPE-\d+)<', second.text)
    requests = client.get("/ServiceRequest").json()
    assert requests["total"] == 1
    # The same QuestionnaireResponses as any referral: the eligibility answers and the STarT Back answers.
    supporting = [i["reference"] for i in requests["entry"][0]["resource"]["supportingInfo"]]
    responses = [client.get(f"/{r}").json() for r in supporting if r.startswith("QuestionnaireResponse/")]
    assert sorted(r["questionnaire"].rsplit("/", 1)[1] for r in responses) == [
        "back-eligibility|1.0.0",
        "startback|1.0.0",
    ]
    startback = next(r for r in responses if "startback" in r["questionnaire"])
    item = {i["linkId"]: i["answer"][0] for i in startback["item"]}
    assert item["91348-3"]["valueCoding"]["code"] == "slightly"
    assert item["91351-7"]["valueInteger"] == 4  # the calculated total


def test_self_referrals_are_limited_per_client(make: Any) -> None:
    client = make(self_referrals_per_hour=1)
    assert self_refer(client).status_code == 200
    answer = self_refer(client)
    assert answer.status_code == 429
    assert client.get("/ServiceRequest").json()["total"] == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nhs", "9990000019", "Enter a valid 10-digit NHS number, or leave it blank"),
        ("postcode", "NOT A CODE", "Enter a real postcode, for example LS1 4AP"),
        ("birth-month", "13", "Enter your date of birth, for example 31 3 1980"),
        ("email", "", None),
    ],
)
def test_details_are_checked_as_any_referral_is(make: Any, field: str, value: str, message: str | None) -> None:
    client = make()
    csrf = token(client.get("/self-referral").text)
    client.post("/self-referral", data={"csrf_token": csrf, "pathway": "back"})
    client.post("/self-referral/questions", data={"csrf_token": csrf, **BACK_ANSWERS})
    answer = client.post("/self-referral/details", data={"csrf_token": csrf, **DETAILS, field: value})
    if message is None:  # a phone number is enough without an email address... but neither is not
        assert answer.status_code == 400
        assert errors(answer.text) == [
            "Error: Enter a phone number or an email address, so that the service can contact you"
        ]
        return
    assert answer.status_code == 400
    assert errors(answer.text) == [f"Error: {message}"]
    assert 'class="nhsuk-error-summary"' in answer.text


def test_figures_refuse_a_bad_period_saying_which(make: Any) -> None:
    client = make()
    sign_in(client)
    answer = client.get("/figures", params={"start": "2026-13-01"})
    assert answer.status_code == 400
    assert errors(answer.text) == ["Error: Enter the start date as YYYY-MM-DD, for example 2026-01-01"]


def test_answers_that_cannot_be_true_are_refused_not_sent(make: Any) -> None:
    client = make()
    csrf = token(client.get("/self-referral").text)
    client.post("/self-referral", data={"csrf_token": csrf, "pathway": "back"})
    future = {"q-symptom-onset-date-day": "1", "q-symptom-onset-date-month": "1", "q-symptom-onset-date-year": "2999"}
    answer = client.post("/self-referral/questions", data={"csrf_token": csrf, **BACK_ANSWERS, **future})
    assert answer.status_code == 400
    assert errors(answer.text) == ["Error: The date your symptoms began must be today or in the past"]
    before_birth = {
        "q-symptom-onset-date-day": "1",
        "q-symptom-onset-date-month": "1",
        "q-symptom-onset-date-year": "1960",
    }
    client.post("/self-referral/questions", data={"csrf_token": csrf, **BACK_ANSWERS, **before_birth})
    answer = client.post("/self-referral/details", data={"csrf_token": csrf, **DETAILS})  # born 1970
    assert answer.status_code == 400
    assert errors(answer.text) == ["Error: Your date of birth must be before the date your symptoms began"]
    client.post("/self-referral/details", data={"csrf_token": csrf, **DETAILS, "birth-year": "1950"})
    # Then the answers change after the details were given: checked again when sending, never sent as true.
    client.post(
        "/self-referral/questions",
        data={"csrf_token": csrf, **BACK_ANSWERS, **{**before_birth, "q-symptom-onset-date-year": "1940"}},
    )
    sent = client.post("/self-referral/check", data={"csrf_token": csrf})
    assert sent.status_code == 422
    assert "Your referral was not sent" in sent.text and "Referral sent" not in sent.text
    assert client.get("/ServiceRequest").json()["total"] == 0
