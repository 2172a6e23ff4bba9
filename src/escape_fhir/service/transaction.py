"""``POST /`` with a ``transaction`` Bundle: every entry or none (FHIR R4 http.html#transaction, #trules).

Entries, for the resource types this server reads:

* ``POST Type`` (create); with ``ifNoneExist`` a conditional create (http.html#ccreate): no match creates,
  one match is answered ``200 OK`` and left as it is, several fail the Bundle (412);
* ``PUT Type/id`` (update, or create when the id is not held; ``ifMatch`` honoured) and ``PUT Type?query``
  (conditional update, http.html#cond-update): 0 matches create (with the resource's id if it has one), 1
  updates it (a different resource id is 400), several are 412;
* ``DELETE Type/id``;
* ``GET Type/id`` (read) and ``GET Type?params`` (search of ServiceRequest and Task), answered after the writes.

Conditions are ``identifier=system|value`` (``service.conditional``). A reference ``Type?identifier=...`` is a
conditional reference: it must name exactly one resource, among the Bundle's entries or held here (0: 422,
several: 412), and becomes ``Type/id``; ``fullUrl``s of the entries become ``Type/id`` too.

Processing order (http.html#trules): identities first (ids of creates, matches of conditions; two entries
changing one resource fail the Bundle, 400), then DELETE, POST, PUT, GET; the answer keeps the request's
order, each entry with its status, location, etag and lastModified. What each entry may do, with which scope
and in which state, is :mod:`escape_fhir.service.permissions`' decision: a Task changes only through the
triage state machine with its version precondition, a referral's ServiceRequest only by message. A created
ServiceRequest is a referral (our referral number, a triage Task, a planned Encounter), as one received by
message is. Any failure rolls the whole Bundle back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.exc import IntegrityError

from escape_fhir.domain import RedFlag
from escape_fhir.errors import Issue
from escape_fhir.service import conditional, permissions
from escape_fhir.service.common import READ_TYPES, new_id, now, ref, referral_reference, rewrite_references
from escape_fhir.service.intake import assess_bundle, validated
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.permissions import Action
from escape_fhir.service.referrals import planned_encounter
from escape_fhir.service.rest import search_in
from escape_fhir.service.search import PARAMETERS
from escape_fhir.service.transaction_referrals import identifier_of_new
from escape_fhir.service.triage import Assessment, apply_change, new_task, parse_if_match
from escape_fhir.settings import Scope
from escape_fhir.storage import Database, ReferralRecord, Repository, Stored, VersionConflict, instant
from escape_fhir.validation.api import Validator

Json = dict[str, Any]
#: Methods in processing order (http.html#trules: DELETE, POST, PUT/PATCH, GET).
ORDER = ("DELETE", "POST", "PUT", "GET")
ACTIONS = {"DELETE": Action.DELETE, "POST": Action.CREATE, "PUT": Action.UPDATE, "GET": Action.READ}
CREATED, OK, NO_CONTENT = "201 Created", "200 OK", "204 No Content"
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _bad(text: str, where: str, problem: Problem = Problem.BAD_REQUEST, code: str = "invalid") -> OutcomeError:
    return OutcomeError(problem, [Issue("error", code, text, where)])


class _Entry:
    """One entry's request, checked for shape; ``rid`` (our id) and ``creates`` are set once identities are."""

    def __init__(self, i: int, entry: Any) -> None:
        self.n, self.at = i, f"Bundle.entry[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
            raise _bad("a transaction entry needs a request", self.at, code="required")
        self.raw: Json = entry
        self.request: Json = entry["request"]
        self.method = str(self.request.get("method", ""))
        url = str(self.request.get("url", "")).strip().lstrip("/")
        path, _, self.query = url.partition("?")
        self.full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        resource = entry.get("resource")
        self.resource: Json = resource if isinstance(resource, dict) else {}
        self.kind, _, self.id = path.partition("/")
        self.rid = self.id
        self.creates = False
        self._check()
        self.condition = self._condition()

    def _condition(self) -> conditional.Condition | None:
        """The condition of a conditional create (``ifNoneExist``) or update (``PUT Type?query``)."""
        if self.method == "POST" and self.request.get("ifNoneExist"):
            return conditional.parse_condition(str(self.request["ifNoneExist"]), f"{self.at}.request.ifNoneExist")
        if self.method == "PUT" and self.query:
            return conditional.parse_condition(self.query, f"{self.at}.request.url")
        return None

    def _check(self) -> None:
        where = f"{self.at}.request.url"
        if self.method not in ORDER:
            text = f"{self.method or 'no'} method: transactions here take {', '.join(ORDER)}"
            raise _bad(text, f"{self.at}.request.method", Problem.UNPROCESSABLE, "not-supported")
        if self.kind not in READ_TYPES:
            text = f"{self.kind or 'no'} resources are not served here"
            raise _bad(text, where, Problem.UNPROCESSABLE, "not-supported")
        if self.method in ("POST", "PUT") and self.resource.get("resourceType") != self.kind:
            raise _bad(f"request.url {self.kind!r} does not match the resource", where)
        if self.method == "POST" and (self.id or self.query):
            raise _bad("POST takes request.url Type (a condition goes in ifNoneExist)", where)
        if self.method in ("PUT", "DELETE") and bool(self.id) == bool(self.query):
            raise _bad(
                f"{self.method} needs request.url Type/id" + (" or Type?query" if self.method == "PUT" else ""), where
            )
        if self.method == "PUT" and not self.query and self.resource.get("id") != self.id:
            raise _bad("the resource id must match request.url", f"{self.at}.resource.id")
        if self.method == "DELETE" and self.query:
            raise _bad("conditional delete is not supported", where, Problem.UNPROCESSABLE, "not-supported")
        if self.id and not _ID.match(self.id):  # FHIR datatypes.html#id; also keeps NUL out of every store
            raise _bad(f"request.url {self.kind}/{self.id[:80]!r} is not Type/id (id: 1-64 of A-Z a-z 0-9 - .)", where)
        if self.method == "GET" and not self.id and self.kind not in PARAMETERS:
            text = f"search of {self.kind} is not supported ({', '.join(sorted(PARAMETERS))} are searchable)"
            raise _bad(text, where, Problem.UNPROCESSABLE, "not-supported")

    @property
    def key(self) -> str:
        return ref(self.kind, self.rid)


def process(
    db: Database,
    bundle: Json,
    base: str,
    validator: Validator,
    scopes: frozenset[Scope],
    red_flags: Mapping[str, RedFlag] | None = None,
) -> Json:
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        raise _bad("POST / takes a Bundle of type transaction", "Bundle.type", code="structure")
    raw = bundle.get("entry")
    if raw is not None and not isinstance(raw, list):
        raise _bad("Bundle.entry must be a list of entries", "Bundle.entry", code="structure")
    entries = [_Entry(i, e) for i, e in enumerate(raw or [])]
    rules = [permissions.allow(scopes, ACTIONS[e.method], e.kind, e.at) for e in entries]  # 403 before any work
    validated(bundle, validator)
    submits_referral = any(e.kind == "ServiceRequest" and e.method in ("POST", "PUT") for e in entries)
    moment = now()
    try:
        results, reads = _write(db, bundle, entries, rules, scopes, base, submits_referral, moment, red_flags)
    except IntegrityError:
        # Another transaction registered the same referral identifier at the same moment (PostgreSQL waits
        # on the unique key): done again, this one now finds that referral held and gets its 422.
        results, reads = _write(db, bundle, entries, rules, scopes, base, submits_referral, moment, red_flags)
    out = [_response_entry(base, e, *results[e.n], reads.get(e.n)) for e in entries]
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "meta": {"lastUpdated": instant(moment)},
        "entry": out,
    }


def _write(
    db: Database,
    bundle: Json,
    entries: list[_Entry],
    rules: list[permissions.Rule],
    scopes: frozenset[Scope],
    base: str,
    submits_referral: bool,
    moment: datetime,
    red_flags: Mapping[str, RedFlag] | None,
) -> tuple[dict[int, tuple[Stored | None, str]], dict[int, Json]]:
    with db.write() as repo:
        _identify(repo, entries)
        bodies = _resolved_bodies(repo, entries)
        # After the references are resolved, so that a reference naming nothing is reported as such.
        assessment = (
            assess_bundle(_for_reader(repo, bundle, entries, bodies), [], red_flags) if submits_referral else None
        )
        results: dict[int, tuple[Stored | None, str]] = {}
        for method in ORDER:
            for e in (e for e in entries if e.method == method):
                results[e.n] = _apply(repo, e, rules[e.n], bodies.get(e.n, {}), scopes, moment)
        if assessment is not None:
            _register_referrals(
                repo, [e for e in entries if e.creates and e.kind == "ServiceRequest"], results, assessment, moment
            )
        reads = {e.n: _read(repo, e, base) for e in entries if e.method == "GET"}
    return results, reads


# --- identities -------------------------------------------------------------------------------------------
def _identify(repo: Repository, entries: list[_Entry]) -> None:
    """Our id of every entry's target (conditions matched in the store); two entries changing one fail."""
    same_condition: dict[tuple[str, str], str] = {}  # one ifNoneExist twice in a Bundle: one resource
    owners: dict[str, _Entry] = {}
    # Matching a condition and creating what it did not find is one step: writers naming the same identifier
    # (two engine transactions for one patient, on two servers) take turns, else each would create one.
    repo.lock_names([name for e in entries if e.condition for name in e.condition.lock_names(e.kind)])
    for e in entries:
        if e.method == "POST":
            _identify_create(repo, e, same_condition)
        elif e.method == "PUT":
            _identify_update(repo, e)
        if e.method == "GET" or (e.method == "POST" and not e.creates):
            continue
        if (first := owners.get(e.key)) is not None:
            text = f"{first.at} and {e.at} both change {e.key} (http.html#trules: identities may not overlap)"
            raise _bad(text, f"{e.at}.request.url")
        owners[e.key] = e


def _identify_create(repo: Repository, e: _Entry, same_condition: dict[tuple[str, str], str]) -> None:
    condition = e.condition
    if condition is None:
        e.rid, e.creates = new_id(), True
        return
    earlier = same_condition.get((e.kind, condition.text))
    matches = [earlier] if earlier else conditional.stored_matches(repo, e.kind, condition)
    if len(matches) > 1:
        raise conditional.multiple(f"ifNoneExist {condition.text}", f"{e.at}.request.ifNoneExist")
    e.rid, e.creates = (matches[0], False) if matches else (new_id(), True)
    same_condition[(e.kind, condition.text)] = e.rid


def _identify_update(repo: Repository, e: _Entry) -> None:
    if e.condition is not None:
        where = f"{e.at}.request.url"
        matches = conditional.stored_matches(repo, e.kind, e.condition)
        if len(matches) > 1:
            raise conditional.multiple(f"PUT {e.kind}?{e.query}", where)
        given = e.resource.get("id")
        if matches and given is not None and given != matches[0]:
            text = f"the condition matches {e.kind}/{matches[0]}, not the resource's id {given}"
            raise _bad(text, f"{e.at}.resource.id")
        if not matches and given is not None and _held(repo, e.kind, str(given)):
            text = f"{e.kind}/{given} is held but does not match {e.query}"
            raise _bad(text, f"{e.at}.resource.id")
        e.rid = matches[0] if matches else str(given) if isinstance(given, str) and given else new_id()
    e.creates = not _held(repo, e.kind, e.rid)


def _held(repo: Repository, kind: str, rid: str) -> bool:
    current = repo.current(kind, rid)
    return current is not None and not current.deleted


# --- references -------------------------------------------------------------------------------------------
def _resolved_bodies(repo: Repository, entries: list[_Entry]) -> dict[int, Json]:
    """Each POST and PUT resource with its id, its fullUrl references and conditional references resolved."""
    ids = {e.full_url: e.key for e in entries if e.full_url and e.method in ("POST", "PUT")}
    written = [(e.kind, e.rid, e.resource) for e in entries if e.method in ("POST", "PUT")]
    replaced = {e.key for e in entries if e.method in ("DELETE", "PUT")}
    for e in entries:
        if e.method not in ("POST", "PUT"):
            continue
        for where, target in conditional.conditional_references(e.resource, f"{e.at}.resource"):
            if target not in ids:
                ids[target] = conditional.resolve_reference(repo, target, where, written, replaced)
    return {
        e.n: {**rewrite_references(e.resource, ids.get), "id": e.rid} for e in entries if e.method in ("POST", "PUT")
    }


def _for_reader(repo: Repository, bundle: Json, entries: list[_Entry], bodies: dict[int, Json]) -> Json:
    """The Bundle as the referral reader gets it: each resource with our id and its references resolved to
    ``Type/id`` (the reader finds entries by ``Type/id`` as by fullUrl), and the resources held here that it
    names without carrying them (a Patient known by NHS number from an earlier transaction) added as entries,
    following their references in turn a few steps."""
    out = [{**e.raw, "resource": bodies[e.n]} if e.n in bodies else e.raw for e in entries]
    carried = {ref(str(b["resourceType"]), str(b["id"])) for b in bodies.values()}
    wanted = _references(list(bodies.values())) - carried
    for _ in range(_READER_STEPS):
        keys = sorted(tuple(k.split("/", 1)) for k in wanted if k.split("/", 1)[0] in READ_TYPES)
        found = [s.content for s in repo.currents([(k[0], k[1]) for k in keys]).values() if not s.deleted]
        out += [{"resource": content} for content in found]
        carried |= {ref(str(c["resourceType"]), str(c["id"])) for c in found}
        wanted = _references(found) - carried
        if not wanted:
            break
    return {**bundle, "entry": out}


#: How far the reader's Bundle follows references into what is held (ServiceRequest -> PractitionerRole ->
#: Organization is two).
_READER_STEPS = 3
_LITERAL = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


def _references(resources: list[Json]) -> set[str]:
    """Every literal ``Type/id`` reference in ``resources``."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            target = node.get("reference")
            if isinstance(target, str) and _LITERAL.match(target):
                found.add(target)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(resources)
    return found


# --- applying ---------------------------------------------------------------------------------------------
def _apply(
    repo: Repository, e: _Entry, rule: permissions.Rule, body: Json, scopes: frozenset[Scope], moment: datetime
) -> tuple[Stored | None, str]:
    if e.method == "GET":
        return None, OK
    if e.method == "DELETE":
        permissions.check_state(repo, rule, e.kind, e.rid, e.at)
        return _delete(repo, e, moment)
    if e.method == "POST" and not e.creates:
        return repo.current(e.kind, e.rid), OK
    if e.creates:  # a PUT of an id not held is a create, with the create's rule (a Task is never created)
        permissions.allow(scopes, Action.CREATE, e.kind, e.at)
        if e.request.get("ifMatch"):  # the version the client names does not exist (RFC 9110 13.1.1)
            text = f"ifMatch {e.request['ifMatch']}: {e.key} is not held"
            raise _bad(text, f"{e.at}.request.ifMatch", Problem.PRECONDITION_FAILED, "conflict")
        return repo.save(body, moment), CREATED
    if rule.triage:  # http.html#concurrency: the triage state machine needs the version the change was made on
        expected = parse_if_match(e.request.get("ifMatch"), f"{e.at}.request.ifMatch")
        return apply_change(repo, e.rid, body, expected, moment, e.at), OK
    if rule.contact:  # the hub's "to contact" list follows the change, which needs its version too
        from escape_fhir.sites.hub import update_contact

        expected = parse_if_match(e.request.get("ifMatch"), f"{e.at}.request.ifMatch")
        return update_contact(repo, e.rid, body, expected, moment, e.at), OK
    permissions.check_state(repo, rule, e.kind, e.rid, e.at)
    return _put(repo, e, body, moment)


def _put(repo: Repository, e: _Entry, body: Json, moment: datetime) -> tuple[Stored, str]:
    if_match = e.request.get("ifMatch")
    expected = parse_if_match(str(if_match), f"{e.at}.request.ifMatch") if if_match else None
    try:
        stored = repo.save(body, moment, expected_version=expected)
    except VersionConflict as exc:
        text = f"ifMatch {if_match} is stale (current version {exc.current})"
        raise _bad(text, f"{e.at}.request.ifMatch", Problem.PRECONDITION_FAILED, "conflict") from None
    return stored, OK


def _delete(repo: Repository, e: _Entry, moment: datetime) -> tuple[Stored | None, str]:
    current = repo.current(e.kind, e.rid)
    if current is None or current.deleted:
        return None, NO_CONTENT
    return repo.save(current.content, moment, deleted=True), NO_CONTENT


def _read(repo: Repository, e: _Entry, base: str) -> Json:
    if not e.id:
        return search_in(repo, e.kind, parse_qsl(e.query, keep_blank_values=True), base)
    current = repo.current(e.kind, e.id)
    if current is None or current.deleted:
        status = "404 Not Found" if current is None else "410 Gone"
        return {"response": {"status": status}}
    return {
        "fullUrl": f"{base}/{e.kind}/{e.id}",
        "resource": current.content,
        "response": {"status": OK, "etag": f'W/"{current.version_id}"', "lastModified": instant(current.last_updated)},
    }


def _register_referrals(
    repo: Repository,
    created: list[_Entry],
    results: dict[int, tuple[Stored | None, str]],
    assessment: Assessment,
    moment: datetime,
) -> None:
    for e in created:
        stored = results[e.n][0]
        assert stored is not None
        sr = stored.content
        task_id, enc_id = new_id(), new_id()
        identifier = identifier_of_new(repo, sr, f"{e.at}.resource.identifier")
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


def _response_entry(base: str, e: _Entry, stored: Stored | None, status: str, read: Json | None) -> Json:
    if read is not None:
        return read if "response" in read else {"resource": read, "response": {"status": OK}}
    response: Json = {"status": status}
    if stored is not None:
        response["location"] = f"{stored.resource_type}/{stored.resource_id}/_history/{stored.version_id}"
        response["etag"] = f'W/"{stored.version_id}"'
        response["lastModified"] = instant(stored.last_updated)
    entry: Json = {"response": response}
    if stored is not None and not stored.deleted:
        entry = {"fullUrl": f"{base}/{stored.resource_type}/{stored.resource_id}", **entry}
    return entry
