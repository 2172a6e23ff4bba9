"""Public self-referral: the eligibility questions and, for backs, STarT Back, rendered from our
Questionnaires; the person's details; check your answers; a confirmation with the referral reference.

What is posted becomes a referral in the input format (``domain.Referral``, source ``self-referral``), is
translated to the same BaRS message Bundle as any referral (its QuestionnaireResponses included) and goes
through the same intake as ``$process-message`` (``service.intake``): validated, assessed, stored with its
triage Task in one transaction. Nothing is stored on the server until the person sends it (the answers wait
in the encrypted session cookie, ``pages.sessions``).

Repeated submission: the referral's id is a UUID made when the journey starts and the message's
``X-Request-ID`` is derived from it, so a second press of "Send" (two tabs, a double click, a resend after a
lost answer) is the same message: intake answers it as a duplicate and the person sees the same reference.
Abuse: at most ``ESCAPE_FHIR_SELF_REFERRALS_PER_HOUR`` sent referrals per client address an hour.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from escape_fhir.domain import EligibilityAnswers, Referral
from escape_fhir.domain.referral import load_referral
from escape_fhir.domain.startback import ITEM_CODES
from escape_fhir.errors import ReferralInputError
from escape_fhir.fhir import codes, jsonio
from escape_fhir.fhir.bundles import translate
from escape_fhir.fhir.questionnaires import questionnaire_for
from escape_fhir.pages import signposting
from escape_fhir.pages.questionnaire_form import Question, parse_date, questions, read_answers, shown
from escape_fhir.pages.render import PageRefused, redirect, render
from escape_fhir.pages.sessions import check_csrf, session_of
from escape_fhir.service import intake
from escape_fhir.service.outcomes import OutcomeError

router = APIRouter(include_in_schema=False)
BASE = "https://w3id.org/escape-fhir/Questionnaire"
FORMS = {"knee-hip": (f"{BASE}/knee-hip-eligibility",), "back": (f"{BASE}/back-eligibility", f"{BASE}/startback")}
PROGRAMMES = {"knee-hip": "Knee or hip pain", "back": "Back pain"}
#: Questions a person may leave blank: the onset date is asked "if the date is known".
OPTIONAL = frozenset({"symptom-onset-date"})
DRAFT = "self-referral"
SENT = "self-referral-sent"
DETAILS = ("given", "family", "birth", "postcode", "phone", "email", "nhs")


def _draft(request: Request) -> dict[str, Any]:
    found = session_of(request).data.get(DRAFT)
    return found if isinstance(found, dict) else {}


def _save(request: Request, draft: dict[str, Any]) -> None:
    session_of(request).set(DRAFT, draft)


def asked(pathway: str) -> list[tuple[str, list[Question]]]:
    """The Questionnaires of ``pathway`` (title, questions asked), from our own definitions."""
    found = []
    for url in FORMS[pathway]:
        questionnaire = questionnaire_for(url)
        assert questionnaire is not None, url
        found.append((str(questionnaire.get("title", "")), list(questions(questionnaire))))
    return found


@router.get("/self-referral")
def start(request: Request) -> Response:
    return render(
        request,
        "self_start.html",
        title="Refer yourself to ESCAPE-pain",
        chosen=_draft(request).get("pathway"),
        errors={},
    )


@router.post("/self-referral")
async def choose(request: Request) -> Response:
    form = await request.form()
    _csrf(request, form)
    pathway = str(form.get("pathway") or "")
    if pathway not in FORMS:
        errors = {"pathway-knee-hip": "Select the pain you want help with"}
        return render(
            request, "self_start.html", 400, title="Refer yourself to ESCAPE-pain", chosen=None, errors=errors
        )
    draft = _draft(request)
    if draft.get("pathway") != pathway:
        draft = {"pathway": pathway, "id": str(uuid.uuid4())}
    _save(request, draft)
    return redirect(request, "/self-referral/questions")


def _csrf(request: Request, form: Any) -> None:
    if not check_csrf(request, form):
        raise PageRefused(403, "Your session has expired", "Go back to the start of the self-referral and try again.")


def _pathway(request: Request) -> str:
    pathway = _draft(request).get("pathway")
    if pathway not in FORMS:
        raise PageRefused(400, "Start your self-referral", "Choose the pain you want help with first.")
    return str(pathway)


def _questions_page(
    request: Request, pathway: str, answers: dict[str, Any], errors: dict[str, str], status: int = 200
) -> Response:
    return render(
        request,
        "self_questions.html",
        status,
        title="About your pain",
        forms=asked(pathway),
        answers=answers,
        errors=errors,
        optional=OPTIONAL,
        programme=PROGRAMMES[pathway],
    )


@router.get("/self-referral/questions")
def question_page(request: Request) -> Response:
    pathway = _pathway(request)
    return _questions_page(request, pathway, _draft(request).get("answers") or {}, {})


@router.post("/self-referral/questions")
async def answer(request: Request) -> Response:
    form = await request.form()
    _csrf(request, form)
    pathway = _pathway(request)
    everything = [q for _, qs in asked(pathway) for q in qs]
    answers, errors = read_answers(everything, form, form.getlist, OPTIONAL)
    onset = parse_date(str(answers.get("symptom-onset-date", "")))
    if onset is not None and onset > date.today():
        errors["q-symptom-onset-date"] = "The date your symptoms began must be today or in the past"
    if errors:
        return _questions_page(request, pathway, answers, errors, 400)
    draft = _draft(request)
    draft["answers"] = answers
    _save(request, draft)
    return redirect(request, "/self-referral/check" if draft.get("details") else "/self-referral/details")


@router.get("/self-referral/details")
def details_page(request: Request) -> Response:
    _pathway(request)
    return render(
        request, "self_details.html", title="Your details", details=_draft(request).get("details") or {}, errors={}
    )


def _details_errors(details: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not details["given"]:
        errors["given"] = "Enter your first name"
    if not details["family"]:
        errors["family"] = "Enter your last name"
    birth = parse_date(details["birth"]) if details["birth"] else None
    if birth is None:
        errors["birth-day"] = "Enter your date of birth, for example 31 3 1980"
    elif birth > date.today():
        errors["birth-day"] = "Your date of birth must be in the past"
    if not details["postcode"]:
        errors["postcode"] = "Enter your postcode"
    if not details["phone"] and not details["email"]:
        errors["phone"] = "Enter a phone number or an email address, so that the service can contact you"
    return errors


@router.post("/self-referral/details")
async def give_details(request: Request) -> Response:
    form = await request.form()
    _csrf(request, form)
    _pathway(request)
    details = {k: str(form.get(k) or "").strip()[:200] for k in DETAILS if k != "birth"}
    parts = [str(form.get(f"birth-{p}") or "").strip()[:4] for p in ("day", "month", "year")]
    details["birth"] = "-".join(parts) if any(parts) else ""
    details["nhs"] = details["nhs"].replace(" ", "")
    errors = _details_errors(details)
    if not errors:  # the same checks as any referral: NHS number check digit, postcode format
        try:
            _referral(_draft(request) | {"details": details})
        except ReferralInputError as exc:
            errors = _field_errors(exc)
    if errors:
        return render(request, "self_details.html", 400, title="Your details", details=details, errors=errors)
    draft = _draft(request)
    draft["details"] = details
    _save(request, draft)
    return redirect(request, "/self-referral/check")


def _field_errors(exc: ReferralInputError) -> dict[str, str]:
    fields = {
        "patient.nhsNumber": ("nhs", "Enter a valid 10-digit NHS number, or leave it blank"),
        "patient.address.postcode": ("postcode", "Enter a real postcode, for example LS1 4AP"),
        "patient.birthDate": ("birth-day", "Enter a real date of birth"),
        "patient.email": ("email", "Enter a real email address"),
        "symptomOnsetDate": ("birth-day", "Your date of birth must be before the date your symptoms began"),
    }
    errors: dict[str, str] = {}
    for error in exc.errors:
        where = fields.get(error.location)
        field_id, text = where if where else ("given", f"Check your details: {error.message}")
        errors.setdefault(field_id, text)
    return errors


def _referral(draft: dict[str, Any], site: signposting.LocalSite | None = None) -> Referral:
    """The referral in the input format, validated as any sender's (ReferralInputError names each field);
    ``site``, the local site that takes it, is its receiver."""
    pathway, answers, details = draft["pathway"], draft.get("answers") or {}, draft["details"]
    eligibility = {
        link.replace("-", "_"): value == "yes"
        for link, value in answers.items()
        if link.replace("-", "_") in EligibilityAnswers.model_fields and value in ("yes", "no")
    }
    birth = parse_date(details["birth"])
    onset = parse_date(str(answers.get("symptom-onset-date", "")))
    sites = answers.get("affected-sites") or []
    patient: dict[str, Any] = {
        "name": {"given": [details["given"]], "family": details["family"]},
        "birthDate": birth.isoformat() if birth else None,
        "address": {"postcode": details["postcode"]},
    }
    if details.get("nhs"):
        patient["nhsNumber"] = details["nhs"]
    for key, field in (("phone", "phone"), ("email", "email")):
        if details.get(key):
            patient[field] = details[key]
    data: dict[str, Any] = {
        "id": draft["id"],
        "referralDate": date.today().isoformat(),
        "pathway": pathway,
        "source": "self-referral",
        "patient": patient,
        "affectedSites": sites if isinstance(sites, list) else [sites],
        "eligibility": {_camel(k): v for k, v in eligibility.items()},
    }
    if "symptom-duration-months" in answers:
        data["symptomDurationMonths"] = int(answers["symptom-duration-months"])
    if onset:
        data["symptomOnsetDate"] = onset.isoformat()
    startback = {code: answers[code] for code in ITEM_CODES if code in answers}
    if startback:
        data["startBack"] = startback
    if site is not None:
        data["receiver"] = site.organisation.model_dump(by_alias=True, exclude_none=True)
    return load_referral(data)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.capitalize() for p in rest)


@router.get("/self-referral/check")
def check_page(request: Request) -> Response:
    draft = _draft(request)
    pathway = _pathway(request)
    if not draft.get("details"):
        return redirect(request, "/self-referral/details")
    rows = [
        (title, [(q, shown(q, (draft.get("answers") or {}).get(q.link_id))) for q in qs])
        for title, qs in asked(pathway)
    ]
    return render(
        request,
        "self_check.html",
        title="Check your answers before sending",
        rows=rows,
        details=draft["details"],
        programme=PROGRAMMES[pathway],
        birth=parse_date(draft["details"]["birth"]),
        errors={},
    )


@router.post("/self-referral/check")
async def send(request: Request) -> Response:
    form = await request.form()
    _csrf(request, form)
    draft = _draft(request)
    _pathway(request)
    if not draft.get("details"):
        return redirect(request, "/self-referral/details")
    client = request.client.host if request.client else "unknown"
    if not request.app.state.page_limits["self-referral"].allow(client):
        raise PageRefused(
            429,
            "Too many referrals sent",
            "Too many referrals were sent from this connection. Try again in an hour, or contact your GP practice.",
        )
    postcode = draft["details"]["postcode"]
    site = await run_in_threadpool(signposting.local_site, request.app.state.db, draft["pathway"], postcode)
    try:
        referral = _referral(draft, site)
    except ReferralInputError as exc:  # e.g. symptoms said to begin before the date of birth
        problems = "; ".join(e.message for e in exc.errors) or str(exc)
        raise PageRefused(
            422, "Check your answers", f"Your referral was not sent: {problems}. Go back and change them."
        ) from None
    reference = await run_in_threadpool(_submit, request, referral)
    session = session_of(request)
    session.pop(DRAFT)
    session.set(
        SENT,
        {
            "reference": reference,
            "pathway": referral.pathway.value,
            "site": site.name if site else None,
            "organisation": site.organisation.name if site else None,
            "join": site.how_to_join if site else None,
            "finder": signposting.finder_link(postcode),
        },
    )
    return redirect(request, "/self-referral/confirmation")


def _submit(request: Request, referral: Referral) -> str:
    """Through the intake of ``$process-message``; the reference of the stored referral (a resend of the same
    journey finds the one stored the first time)."""
    bundle = translate(referral)
    data = jsonio.dumps(bundle)
    request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"self-referral:{referral.id}"))
    base = str(request.base_url).rstrip("/")
    app = request.app
    delivery = intake.Delivery(request_id, request_id, data, "json", base, frozenset(), app.state.red_flags)
    try:
        result = intake.process_message(app.state.db, bundle, delivery, app.state.validator)
    except OutcomeError as exc:
        held = _already_sent(request, referral)
        if held is None:
            raise PageRefused(
                422, "Your referral could not be sent", "; ".join(i.message for i in exc.issues)
            ) from None
        return held
    assert result.referral is not None
    return result.referral


def _already_sent(request: Request, referral: Referral) -> str | None:
    """The reference of this journey's referral if it was stored already (a repeated submission)."""
    with request.app.state.db.read() as repo:
        found = repo.referral(sender_identifier=_sender_identifier(referral))
    return f"ESCAPE-{found.number:06d}" if found else None


def _sender_identifier(referral: Referral) -> str:
    return f"{codes.ID_REFERRAL}|{referral.id}"


@router.get("/self-referral/confirmation")
def confirmation(request: Request) -> Response:
    sent = session_of(request).data.get(SENT)
    if not isinstance(sent, dict):
        return redirect(request, "/self-referral")
    return render(
        request, "self_confirmation.html", title="Referral sent", sent=sent, programme_site=signposting.PROGRAMME_SITE
    )
