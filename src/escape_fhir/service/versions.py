"""Versioned updates (FHIR http.html#concurrency), shared by the changes this server allows only in part: a
triage decision on a Task (:mod:`escape_fhir.service.triage`) and an entry of the hub's "to contact" list
(:mod:`escape_fhir.sites.hub`). The version ``If-Match`` names must be the current one (412 otherwise, with
the current ``ETag``), only the listed elements may change (422 naming the others), and the save itself
refuses a change committed meanwhile (412)."""

from __future__ import annotations

from typing import Any

from escape_fhir.errors import Issue
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.storage import Repository, Stored, VersionConflict

Json = dict[str, Any]


def check_version(current: Stored, expected: int, at: str) -> None:
    """412 with the current ``ETag`` when ``If-Match`` (at ``at``) names another version than ``current``'s."""
    if current.version_id != expected:
        text = f"If-Match names version {expected}; the current version is {current.version_id}"
        etag = {"ETag": f'W/"{current.version_id}"'}
        raise OutcomeError(Problem.PRECONDITION_FAILED, text, location=at, headers=etag)


def save_version(repo: Repository, body: Json, now: Any, expected: int, at: str) -> Stored:
    """Save ``body`` as the version after ``expected``; 412 when another change was committed meanwhile."""
    try:
        return repo.save(body, now, expected_version=expected)
    except VersionConflict as exc:
        raise OutcomeError(Problem.PRECONDITION_FAILED, f"the current version is {exc.current}", location=at) from None


def check_only_changed(current: Json, wanted: Json, changeable: frozenset[str], who: str, prefix: str) -> None:
    """422 naming the elements ``wanted`` changes outside ``changeable`` (``who`` says what may change)."""

    def fixed(resource: Json) -> Json:
        return {k: v for k, v in resource.items() if k not in changeable}

    if fixed(current) != fixed(wanted):
        changed = sorted(k for k in set(fixed(current)) | set(fixed(wanted)) if current.get(k) != wanted.get(k))
        text = f"{who}; not {', '.join(changed)}"
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, f"{prefix}.{changed[0]}")])
