"""Signposting at discharge: when triage completes a referral's Task, the response to the referrer carries
the site's signposting options (a local gym, a leisure centre, other self-management: the programme's
advice after the 6 weeks) as ``Task.output``, one ``signposting`` each, and a ``participant-summary`` in words
for the participant.

The site is the one the hub routed the referral to (the Task's ``routed-site`` input), else the site of the
Task's owner: the directory's site with the owner Organization's ODS code that runs the referral's programme.
Nothing is added when neither is known: the response is as it was.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from escape_fhir.fhir import codes
from escape_fhir.sites import codes as sc
from escape_fhir.sites import tables as st
from escape_fhir.sites.hub import routed_site_id
from escape_fhir.sites.resources import ODS, service_id, signposting_of
from escape_fhir.storage import Repository

Json = dict[str, Any]


def _programme(repo: Repository, task: Json) -> str | None:
    _, _, sr_id = str((task.get("focus") or {}).get("reference", "")).partition("/")
    sr = repo.current("ServiceRequest", sr_id) if sr_id else None
    for coding in ((sr.content.get("code") or {}).get("coding") or []) if sr else []:
        if isinstance(coding, dict) and coding.get("system") == codes.CS_PROGRAMME:
            return str(coding.get("code"))
    return None


def _owner_site(repo: Repository, task: Json) -> str | None:
    owner = task.get("owner") or {}
    ods = (owner.get("identifier") or {}).get("value") if isinstance(owner.get("identifier"), dict) else None
    kind, _, org_id = str(owner.get("reference", "")).partition("/")
    if ods is None and kind == "Organization" and (org := repo.current("Organization", org_id)) is not None:
        ods = next((i.get("value") for i in org.content.get("identifier") or [] if i.get("system") == ODS), None)
    if not ods:
        return None
    query = select(st.site.c.site_id).where(st.site.c.ods_code == str(ods).upper(), st.site.c.active.is_(True))
    programme = _programme(repo, task)
    if programme:
        query = query.where(st.site.c.programme == programme)
    found = list(repo.session.execute(query).scalars())
    return found[0] if len(found) == 1 else None


def site_signposting(repo: Repository, task: Json) -> tuple[str, list[str]] | None:
    """The site's name and signposting lines for a Task, or None (module docstring)."""
    site_id = routed_site_id(task) or _owner_site(repo, task)
    service = repo.current("HealthcareService", service_id(site_id)) if site_id else None
    if service is None or service.deleted:
        return None
    lines = signposting_of(service.content)
    return (str(service.content.get("name", site_id)), lines) if lines else None


def _output(code: str, text: str) -> Json:
    return {"type": {"coding": [{"system": sc.CS_ROUTING, "code": code}]}, "valueString": text}


def with_signposting(repo: Repository, bundle: Json, task: Json) -> Json:
    """``bundle`` (a triage response) with the signposting outputs on its Task when ``task`` is completed."""
    if task.get("status") != "completed":
        return bundle
    found = site_signposting(repo, task)
    if found is None:
        return bundle
    name, lines = found
    summary = f"You have finished ESCAPE-pain at {name}. To keep going, you could try: " + "; ".join(lines) + "."
    outputs = [_output(sc.SIGNPOSTING, line) for line in lines] + [_output(sc.PARTICIPANT_SUMMARY, summary)]
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "Task":
            resource["output"] = [*(resource.get("output") or []), *outputs]
    return bundle
