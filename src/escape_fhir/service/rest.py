"""Read, version read, history and search (FHIR http.html#read, #vread, #history, search.html), and
``$validate`` (FHIR resource-operation-validate). No web framework here: the API layer calls these."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from escape_fhir.errors import Issue
from escape_fhir.fhir.questionnaires import all_questionnaires
from escape_fhir.service.common import SERVED_TYPES, now
from escape_fhir.service.includes import included
from escape_fhir.service.limits import MAX_ENTRIES, ascii_int, too_many
from escape_fhir.service.outcomes import OutcomeError, Problem, outcome
from escape_fhir.service.search import PARAMETERS, Query, parse_query
from escape_fhir.service.subsetting import elements, summary
from escape_fhir.storage import Database, Repository, Stored, instant
from escape_fhir.validation.api import Validator

Json = dict[str, Any]


def check_type(resource_type: str, allowed: Sequence[str] = SERVED_TYPES) -> None:
    if resource_type not in allowed:
        raise OutcomeError(Problem.NOT_FOUND, f"resource type {resource_type!r} is not served here")


#: A FHIR id (datatypes.html#id): anything else is no resource of ours, so it is not looked up at all (a NUL
#: or a 10 KB "id" never reaches the database).
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def check_id(resource_type: str, resource_id: str) -> None:
    if not _ID.fullmatch(resource_id):
        raise OutcomeError(Problem.NOT_FOUND, f"{resource_type}/{resource_id[:64]!r} is not a FHIR id, so not known")


def read(db: Database, resource_type: str, resource_id: str) -> Stored:
    check_type(resource_type)
    check_id(resource_type, resource_id)
    with db.read() as repo:
        found = repo.current(resource_type, resource_id)
    if found is None:
        raise OutcomeError(Problem.NOT_FOUND, f"{resource_type}/{resource_id} is not known")
    if found.deleted:
        raise OutcomeError(Problem.GONE, f"{resource_type}/{resource_id} was deleted")
    return found


def vread(db: Database, resource_type: str, resource_id: str, version: str) -> Stored:
    check_type(resource_type)
    check_id(resource_type, resource_id)
    found = None
    number = ascii_int(version)
    if number is not None:
        with db.read() as repo:
            found = repo.version(resource_type, resource_id, number)
    if found is None:
        text = f"{resource_type}/{resource_id}/_history/{version[:20]} is not known"
        raise OutcomeError(Problem.NOT_FOUND, text)
    if found.deleted:
        raise OutcomeError(Problem.GONE, f"{resource_type}/{resource_id} version {version} is a deletion")
    return found


def history(db: Database, resource_type: str, resource_id: str, base: str) -> Json:
    check_type(resource_type)
    check_id(resource_type, resource_id)
    with db.read() as repo:
        versions = repo.history(resource_type, resource_id)
    if not versions:
        raise OutcomeError(Problem.NOT_FOUND, f"{resource_type}/{resource_id} is not known")
    entries = []
    for v in versions:
        url = f"{base}/{resource_type}/{resource_id}"
        method = "DELETE" if v.deleted else "POST" if v.version_id == 1 else "PUT"
        entry: Json = {"fullUrl": url}
        if not v.deleted:
            entry["resource"] = v.content
        entry["request"] = {
            "method": method,
            "url": f"{resource_type}/{resource_id}" if method != "POST" else resource_type,
        }
        entry["response"] = {
            "status": "410 Gone" if v.deleted else "201 Created" if v.version_id == 1 else "200 OK",
            "etag": f'W/"{v.version_id}"',
            "lastModified": instant(v.last_updated),
        }
        entries.append(entry)
    return _bundle("history", entries, len(entries), [("self", f"{base}/{resource_type}/{resource_id}/_history")])


def _bundle(kind: str, entries: list[Json], total: int | None, links: list[tuple[str, str]]) -> Json:
    bundle: Json = {"resourceType": "Bundle", "meta": {"lastUpdated": instant(now())}, "type": kind}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = [{"relation": rel, "url": url} for rel, url in links]
    bundle["entry"] = entries
    return bundle


def search(
    db: Database, resource_type: str, params: Sequence[tuple[str, str]], base: str, *, strict: bool = True
) -> Json:
    if resource_type in ("$process-message", "$validate"):
        raise OutcomeError(Problem.METHOD_NOT_ALLOWED, f"{resource_type} takes POST", headers={"Allow": "POST"})
    if resource_type not in PARAMETERS:
        check_type(resource_type)
        raise OutcomeError(
            Problem.METHOD_NOT_ALLOWED, f"search of {resource_type} is not supported", headers={"Allow": "POST"}
        )
    with db.read() as repo:
        return search_in(repo, resource_type, params, base, strict=strict)


def search_in(
    repo: Repository, resource_type: str, params: Sequence[tuple[str, str]], base: str, *, strict: bool = True
) -> Json:
    """The searchset of a search of a type in ``PARAMETERS``, in ``repo``'s transaction (``GET`` alone, or a
    transaction's GET entry)."""
    query = parse_query(resource_type, params, strict=strict)
    count_only = query.summary == "count"
    found, total = repo.search(
        resource_type,
        conditions=query.conditions,
        sort=query.sort,
        count=0 if count_only else query.count,
        offset=query.offset,
        total=query.total != "none" or count_only,
    )
    entries = [
        {
            "fullUrl": f"{base}/{s.resource_type}/{s.resource_id}",
            "resource": _shown(s.content, query),
            "search": {"mode": "match"},
        }
        for s in found
    ]
    entries += [
        {"fullUrl": f"{base}/{s.resource_type}/{s.resource_id}", "resource": s.content, "search": {"mode": "include"}}
        for s in included(repo, found, query.includes)
    ]
    if query.ignored:
        names = ", ".join(sorted(set(query.ignored)))
        text = f"search parameters not known here were ignored (Prefer: handling=lenient): {names}"
        entries.append(
            {"resource": outcome(None, [Issue("warning", "not-supported", text)]), "search": {"mode": "outcome"}}
        )
    known_total = total if total >= 0 else None
    return _bundle("searchset", entries, known_total, _links(base, resource_type, query, known_total, len(found)))


def _shown(content: Json, query: Query) -> Json:
    if query.elements is not None:
        return elements(content, query.elements)
    if query.summary is not None:
        return summary(content, query.summary)
    return content


def _links(base: str, resource_type: str, query: Query, total: int | None, shown: int) -> list[tuple[str, str]]:
    """``self`` (the parameters used: an ignored one is left out) and, when more matches follow, ``next``
    (search.html#paging); ``_offset`` pages. Without a total (``_total=none``), ``next`` follows a full page."""
    kept = [(k, v) for k, v in query.used if k not in ("_offset", "_count")]
    page = [*kept, ("_count", str(query.count))]
    links = [("self", f"{base}/{resource_type}?{urlencode([*page, ('_offset', str(query.offset))])}")]
    more = query.offset + query.count < total if total is not None else shown == query.count
    if query.count and more and query.summary != "count":
        links.append(
            ("next", f"{base}/{resource_type}?{urlencode([*page, ('_offset', str(query.offset + query.count))])}")
        )
    if query.offset > 0:
        previous = max(query.offset - query.count, 0)
        links.append(("previous", f"{base}/{resource_type}?{urlencode([*page, ('_offset', str(previous))])}"))
    return links


# --- the project's Questionnaires --------------------------------------------------------------------------
def questionnaire(questionnaire_id: str) -> Json:
    for q in all_questionnaires():
        if q.get("id") == questionnaire_id:
            return q
    raise OutcomeError(Problem.NOT_FOUND, f"Questionnaire/{questionnaire_id} is not known")


def questionnaires(params: Sequence[tuple[str, str]], base: str) -> Json:
    """``GET /Questionnaire`` lists the project's Questionnaires; ``url`` (canonical) narrows the list."""
    wanted = [v for k, v in params if k == "url"]
    unknown = sorted({k for k, _ in params} - {"url", "_format"})
    if unknown:
        raise OutcomeError(Problem.BAD_REQUEST, f"unknown search parameter {unknown[0]!r} for Questionnaire (url)")
    found = [q for q in all_questionnaires() if not wanted or q.get("url") in {w.split("|")[0] for w in wanted}]
    entries = [
        {"fullUrl": f"{base}/Questionnaire/{q['id']}", "resource": q, "search": {"mode": "match"}} for q in found
    ]
    return _bundle("searchset", entries, len(entries), [("self", f"{base}/Questionnaire")])


# --- $validate -------------------------------------------------------------------------------------------
def validate_operation(
    resource: Json, resource_type: str | None, profiles: Sequence[str], validator: Validator
) -> Json:
    """The OperationOutcome of ``$validate`` (200 whatever the verdict; the issues carry it)."""
    if resource.get("resourceType") == "Parameters":
        resource, profiles = _from_parameters(resource, profiles)
    entries = resource.get("entry") if resource.get("resourceType") == "Bundle" else None
    if isinstance(entries, list) and len(entries) > MAX_ENTRIES:  # the same bound as messages and transactions
        raise too_many("Bundle entries", MAX_ENTRIES, "Bundle.entry", Problem.TOO_LARGE)
    if resource_type is not None and resource.get("resourceType") != resource_type:
        text = f"POST /{resource_type}/$validate takes a {resource_type}, not a {resource.get('resourceType')}"
        raise OutcomeError(Problem.BAD_REQUEST, text, location="resourceType")
    return outcome(None, validator.validate(resource, profiles).issues)


def _from_parameters(parameters: Json, profiles: Sequence[str]) -> tuple[Json, list[str]]:
    found: Json | None = None
    wanted = list(profiles)
    for p in parameters.get("parameter") or []:
        if p.get("name") == "resource" and isinstance(p.get("resource"), dict):
            found = p["resource"]
        elif p.get("name") == "profile" and isinstance(p.get("valueUri") or p.get("valueCanonical"), str):
            wanted.append(p.get("valueUri") or p["valueCanonical"])
    if found is None:
        raise OutcomeError(Problem.BAD_REQUEST, [Issue("error", "required", "no resource parameter", "Parameters")])
    return found, wanted
