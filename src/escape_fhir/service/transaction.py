"""``POST /`` with a ``transaction`` Bundle: every entry or none (FHIR http.html#transaction).

Supported entries: ``POST`` (create; ``ifNoneExist`` with ``identifier=system|value`` for a conditional
create), ``PUT Type/id`` (create or update; ``ifMatch`` honoured) and ``DELETE Type/id``, for the resource
types this server reads. ``urn:uuid:`` fullUrls of created resources become ``Type/id`` in every reference.
A created ServiceRequest is a referral: it gets our referral number, a triage Task and a planned Encounter,
as a referral received by message does; the message rules on referrals apply as
:mod:`escape_fhir.service.transaction_referrals` says (a held referral is updated with PUT, not created again;
a PUT re-assesses it). Any failure rolls the whole Bundle back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from escape_fhir.errors import Issue
from escape_fhir.service.common import READ_TYPES, new_id, now, ref, referral_reference, rewrite_references
from escape_fhir.service.intake import assess_bundle, validated
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.referrals import planned_encounter
from escape_fhir.service.search import token_values
from escape_fhir.service.transaction_referrals import identifier_of_new, reassess_updated
from escape_fhir.service.triage import Assessment, new_task
from escape_fhir.storage import Database, ReferralRecord, Repository, Stored, TokenFilter, VersionConflict, instant
from escape_fhir.validation.api import Validator

Json = dict[str, Any]
METHODS = ("POST", "PUT", "DELETE")


def _bad(text: str, where: str, problem: Problem = Problem.BAD_REQUEST, code: str = "invalid") -> OutcomeError:
    return OutcomeError(problem, [Issue("error", code, text, where)])


class _Entry:
    def __init__(self, i: int, entry: Any) -> None:
        self.at = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
            raise _bad("a transaction entry needs a request", self.at, code="required")
        self.request: Json = entry["request"]
        self.method = str(self.request.get("method", ""))
        self.url = str(self.request.get("url", "")).split("?")[0].strip("/")
        self.full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        resource = entry.get("resource")
        self.resource: Json = resource if isinstance(resource, dict) else {}
        if self.method not in METHODS:
            where = f"{self.at}.request.method"
            raise _bad(
                f"{self.method or 'no'} method: transactions here take POST, PUT, DELETE",
                where,
                Problem.UNPROCESSABLE,
                "not-supported",
            )
        self.kind, _, self.id = self.url.partition("/")
        if self.method != "DELETE" and self.resource.get("resourceType") != self.kind:
            raise _bad(f"request.url {self.url!r} does not match the resource", f"{self.at}.request.url")
        if self.kind not in READ_TYPES:
            raise _bad(
                f"{self.kind or 'no'} resources are not stored here",
                f"{self.at}.request.url",
                Problem.UNPROCESSABLE,
                "not-supported",
            )
        if self.method in ("PUT", "DELETE") and (not self.id or "/" in self.id):
            raise _bad(f"{self.method} needs request.url Type/id", f"{self.at}.request.url")
        if self.method == "PUT" and self.resource.get("id") != self.id:
            raise _bad("the resource id must match request.url", f"{self.at}.resource.id")


def process(db: Database, bundle: Json, base: str, validator: Validator) -> Json:
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        raise _bad("POST / takes a Bundle of type transaction", "Bundle.type", code="structure")
    entries = [_Entry(i, e) for i, e in enumerate(bundle.get("entry") or [])]
    validated(bundle, validator)
    creates_referral = any(e.method == "POST" and e.kind == "ServiceRequest" for e in entries)
    assessment = assess_bundle(bundle, []) if creates_referral else None
    moment = now()
    try:
        results = _write(db, bundle, entries, assessment, moment)
    except IntegrityError:
        # Another transaction registered the same referral identifier at the same moment (PostgreSQL waits
        # on the unique key): done again, this one now finds that referral held and gets its 422.
        results = _write(db, bundle, entries, assessment, moment)
    out = [_response_entry(base, e, stored, status) for e, (stored, status) in zip(entries, results, strict=True)]
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "meta": {"lastUpdated": instant(moment)},
        "entry": out,
    }


def _write(
    db: Database, bundle: Json, entries: list[_Entry], assessment: Assessment | None, moment: datetime
) -> list[tuple[Stored | None, str]]:
    with db.write() as repo:
        results = _apply(repo, entries, moment)
        if assessment is not None:
            _register_referrals(repo, results, assessment, moment)
        replaced = [s for e, (s, _) in zip(entries, results, strict=True) if e.method == "PUT" and s is not None]
        reassess_updated(repo, replaced, lambda: assess_bundle(bundle, []), moment)
    return results


def _apply(repo: Repository, entries: list[_Entry], moment: datetime) -> list[tuple[Stored | None, str]]:
    ids: dict[str, str] = {}
    found: dict[int, tuple[str, str]] = {}
    conditions: dict[tuple[str, str], str] = {}  # the same ifNoneExist twice in one Bundle: one resource
    for n, e in enumerate(entries):  # first pass: every id, so references resolve whatever the order
        if e.method == "POST":
            key = (e.kind, str(e.request.get("ifNoneExist") or f"#{n}"))
            existing = conditions.get(key) or _if_none_exist(repo, e)
            found[n] = (existing, "200 OK") if existing else (new_id(), "201 Created")
            conditions[key] = found[n][0]
            if e.full_url:
                ids[e.full_url] = ref(e.kind, found[n][0])
        elif e.full_url:
            ids[e.full_url] = e.url
    results: list[tuple[Stored | None, str]] = []
    for n, e in enumerate(entries):
        if e.method == "DELETE":
            results.append(_delete(repo, e, moment))
            continue
        body = rewrite_references(e.resource, ids.get)
        if e.method == "PUT":
            results.append(_put(repo, e, body, moment))
            continue
        rid, status = found[n]
        stored = repo.current(e.kind, rid)
        results.append((stored, "200 OK") if stored else (repo.save({**body, "id": rid}, moment), status))
    return results


def _if_none_exist(repo: Repository, e: _Entry) -> str | None:
    condition = e.request.get("ifNoneExist")
    if not condition:
        return None
    name, _, value = str(condition).partition("=")
    if name != "identifier" or not value:
        raise _bad(
            "ifNoneExist supports identifier=system|value only",
            f"{e.at}.request.ifNoneExist",
            Problem.UNPROCESSABLE,
            "not-supported",
        )
    matches, total = repo.search(e.kind, [TokenFilter("identifier", token_values(value))], count=2)
    if total > 1:
        raise _bad(
            f"ifNoneExist {condition} matches {total} resources",
            f"{e.at}.request.ifNoneExist",
            Problem.PRECONDITION_FAILED,
            "multiple-matches",
        )
    return matches[0].resource_id if matches else None


def _put(repo: Repository, e: _Entry, body: Json, moment: datetime) -> tuple[Stored, str]:
    if_match = e.request.get("ifMatch")
    expected = (
        int(str(if_match).removeprefix("W/").strip('"'))
        if if_match and str(if_match).removeprefix("W/").strip('"').isdigit()
        else None
    )
    try:
        stored = repo.save(body, moment, expected_version=expected)
    except VersionConflict as exc:
        raise _bad(
            f"ifMatch {if_match} is stale (current version {exc.current})",
            f"{e.at}.request.ifMatch",
            Problem.PRECONDITION_FAILED,
            "conflict",
        ) from None
    return stored, "201 Created" if stored.version_id == 1 else "200 OK"


def _delete(repo: Repository, e: _Entry, moment: datetime) -> tuple[Stored | None, str]:
    current = repo.current(e.kind, e.id)
    if current is None or current.deleted:
        return None, "204 No Content"
    return repo.save(current.content, moment, deleted=True), "204 No Content"


def _register_referrals(
    repo: Repository, results: list[tuple[Stored | None, str]], assessment: Assessment, moment: datetime
) -> None:
    for n, (stored, status) in enumerate(results):
        if stored is None or stored.resource_type != "ServiceRequest" or status != "201 Created":
            continue
        sr = stored.content
        task_id, enc_id = new_id(), new_id()
        identifier = identifier_of_new(repo, sr, f"Bundle.entry[{n}].resource.identifier")
        number = repo.add_referral(ReferralRecord(0, sr["id"], task_id, enc_id, identifier), moment)
        reference = referral_reference(number)
        owner = _owner(repo, sr)
        parts = {
            "focus": {"reference": ref("ServiceRequest", sr["id"])},
            "for": sr.get("subject"),
            "owner": owner,
            "requester": sr.get("requester"),
        }
        repo.save(new_task(task_id, reference, parts, assessment, instant(moment)), moment)
        repo.save(planned_encounter(enc_id, reference, sr, owner, instant(moment)), moment)


def _owner(repo: Repository, sr: Json) -> Json | None:
    for performer in sr.get("performer") or []:
        kind, _, rid = str(performer.get("reference", "")).partition("/")
        target = repo.current(kind, rid) if kind in ("HealthcareService", "Organization") else None
        if target is not None and kind == "HealthcareService":
            kind, _, rid = str((target.content.get("providedBy") or {}).get("reference", "")).partition("/")
            target = repo.current(kind, rid) if kind == "Organization" else None
        if target is not None:
            return {"reference": ref("Organization", target.resource_id)}
    return None


def _response_entry(base: str, e: _Entry, stored: Stored | None, status: str) -> Json:
    response: Json = {"status": status}
    if stored is not None:
        response["location"] = f"{stored.resource_type}/{stored.resource_id}/_history/{stored.version_id}"
        response["etag"] = f'W/"{stored.version_id}"'
        response["lastModified"] = instant(stored.last_updated)
    entry: Json = {"response": response}
    if stored is not None and not stored.deleted:
        entry = {"fullUrl": f"{base}/{stored.resource_type}/{stored.resource_id}", **entry}
    return entry
