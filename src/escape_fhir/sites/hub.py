"""Hub mode (``escape-fhir serve --hub``, ``ESCAPE_FHIR_HUB``): every accepted referral is routed to its site.

In the transaction that stores a new referral (:func:`route_new`, called by intake), so that a committed
referral always has its routing and a message processed once is routed once:

* the referral is routed (:mod:`escape_fhir.sites.routing`) and the triage Task records the outcome as
  ``Task.input``: ``routed-site`` (a reference to the site's HealthcareService) and a ``routing-reason`` per
  rule that applied, or, when no site takes it, the reasons and a ``routing-alternative`` per site the
  referrer could turn to; the referral then stays here, on the triage list, for a person to act on;
* for a site that takes FHIR messages (BaRS endpoint, in the site's order of preference before MESH), the
  message is queued in the outbox to that endpoint: the sender's message with a new Bundle id (derived
  from the received Bundle id, the referral and the routing's number, so it is the same on any replay),
  ``MessageHeader.destination`` the site's endpoint and its Organization, and ``source.endpoint`` this hub
  (the endpoint the sender addressed), so the site's responses come back here. The outbox delivers it
  once (X-Request-ID fixed when queued, nhs-standards.md 1.2);
* a site that takes referrals only by email or phone gets a ``CommunicationRequest`` on the "to contact"
  list (``GET /CommunicationRequest?status=active``): who to contact, how, and what to send. Staff mark an
  entry done (``completed``) or no longer needed (``revoked``, with a ``statusReason``) by ``PUT`` of the
  CommunicationRequest with ``If-Match`` (:func:`update_contact`); nothing else of it changes, and it is
  never created or deleted by a client (service/permissions.py).

Triage re-routes with ``POST /Task/{id}/$route`` (:func:`reroute`): to a named site or to the next best
one, with a reason; the Task's routing inputs are replaced, a note says from where to where and why, and
the message goes to the new site as above. A message to an earlier site that is still waiting in the outbox
is withdrawn (dead, "withdrawn: re-routed to ..."), so it is never sent; one already sent or being sent is
named in the note and gets a BaRS cancellation after it (:func:`_withdraw_earlier`).
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select

from escape_fhir.errors import Issue, MappingError
from escape_fhir.fhir import codes, jsonio
from escape_fhir.fhir.readers import read_referral
from escape_fhir.outbox_states import DEAD, DELIVERED, SENDING
from escape_fhir.service.common import new_id
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.versions import check_only_changed, check_version, save_version
from escape_fhir.sites import codes as sc
from escape_fhir.sites import tables as st
from escape_fhir.sites.model import ELECTRONIC, Site
from escape_fhir.sites.request import RouteRequest, request_of
from escape_fhir.sites.resources import ODS, service_id
from escape_fhir.sites.routing import Routing, route
from escape_fhir.sites.store import directory_for, site
from escape_fhir.storage import Repository, Stored, instant
from escape_fhir.storage import tables as t
from escape_fhir.storage.outbox import REQUEST, NewMessage, Outbox
from escape_fhir.transport.outbox import mesh_destination

Json = dict[str, Any]
#: Namespace of the forwarded messages' Bundle ids (uuid5 of received Bundle id, referral, routing number).
FORWARD_NAMESPACE = uuid.UUID("5b0c1f9e-3a52-4c8e-9d0a-5e2f3c7a1b64")
#: v3 ParticipationMode, the medium of a "to contact" CommunicationRequest.
PARTICIPATION_MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
MEDIUM = {"email": ("EMAILWRIT", "email"), "phone": ("PHONE", "telephone")}
ROUTING_CODES = frozenset({sc.ROUTED_SITE, sc.ROUTING_REASON, sc.ROUTING_ALTERNATIVE})


@dataclass(frozen=True)
class Dispatched:
    method: str
    outbox_id: int | None = None
    contact_id: str | None = None


def _input(code: str, **value: Any) -> Json:
    return {"type": {"coding": [{"system": sc.CS_ROUTING, "code": code}]}, **value}


def _service_reference(chosen: Site) -> Json:
    return {"reference": f"HealthcareService/{service_id(chosen.id)}", "display": chosen.name}


def routing_inputs(routing: Routing | None, problem: str = "") -> list[Json]:
    """The Task inputs of a routing (module docstring); ``problem`` when the referral could not be routed."""
    if routing is None:
        return [_input(sc.ROUTING_REASON, valueString=f"not routed: {problem}")]
    if routing.chosen is not None:
        inputs = [_input(sc.ROUTED_SITE, valueReference=_service_reference(routing.chosen.site))]
        return inputs + [_input(sc.ROUTING_REASON, valueString=r) for r in routing.chosen.reasons]
    inputs = [_input(sc.ROUTING_REASON, valueString=f"not routed: {routing.summary}")]
    return inputs + [
        _input(sc.ROUTING_ALTERNATIVE, valueReference=_service_reference(c.site)) for c in routing.alternatives
    ]


def _with_routing(task: Json, inputs: list[Json]) -> Json:
    kept = [i for i in task.get("input") or [] if _routing_code(i) not in ROUTING_CODES]
    return {**task, "input": kept + inputs}


def _routing_code(item: Json) -> str | None:
    coding = ((item.get("type") or {}).get("coding") or [{}])[0]
    return str(coding.get("code")) if coding.get("system") == sc.CS_ROUTING else None


def routed_site_id(task: Json) -> str | None:
    """The directory id of the site a Task records as chosen, or None."""
    for item in task.get("input") or []:
        if _routing_code(item) == sc.ROUTED_SITE:
            ref = str((item.get("valueReference") or {}).get("reference", ""))
            return ref.removeprefix("HealthcareService/site-") or None
    return None


# --- routing a new referral --------------------------------------------------------------------------------
def route_new(repo: Repository, bundle: Json, number: int, correlation_id: str, now: datetime) -> None:
    """Route a referral just stored (module docstring), in ``repo``'s transaction."""
    record = repo.referral(number=number)
    task = repo.current("Task", record.task_id) if record else None
    if task is None:
        return
    try:
        wanted: RouteRequest | None = request_of(read_referral(bundle).referral)
    except MappingError as exc:
        wanted, problem = None, "; ".join(f"{i.location}: {i.message}" for i in exc.issues)
    if wanted is None:
        _record(repo, number, None, None, f"not routed: {problem}", now)
        repo.save(_with_routing(task.content, routing_inputs(None, problem)), now)
        return
    routing = route(
        directory_for(repo, wanted.postcode, wanted.pathway), wanted.pathway, wanted.postcode, wanted.source
    )
    chosen = routing.chosen.site if routing.chosen else None
    dispatched = _dispatch(repo, bundle, number, chosen, task.content, correlation_id, now) if chosen else None
    _record(repo, number, chosen, dispatched, routing.summary, now)
    repo.save(_with_routing(task.content, routing_inputs(routing)), now)


def _record(
    repo: Repository, number: int, chosen: Site | None, dispatched: Dispatched | None, reason: str, now: datetime
) -> int:
    r = st.site_route
    sequence = _next_sequence(repo, number)
    row = {
        "referral_number": number,
        "sequence": sequence,
        "site_id": chosen.id if chosen else None,
        "method": dispatched.method if dispatched else None,
        "outbox_id": dispatched.outbox_id if dispatched else None,
        "contact_id": dispatched.contact_id if dispatched else None,
        "reason": reason,
        "created": now,
    }
    repo.session.execute(insert(r).values(**row))
    return sequence


def _next_sequence(repo: Repository, number: int) -> int:
    r = st.site_route
    query = select(func.coalesce(func.max(r.c.sequence), 0)).where(r.c.referral_number == number)
    return int(repo.session.execute(query).scalar_one()) + 1


def _dispatch(
    repo: Repository, bundle: Json, number: int, chosen: Site, task: Json, correlation_id: str, now: datetime
) -> Dispatched:
    method = chosen.method(*ELECTRONIC)
    if method is None:
        return Dispatched(chosen.methods[0].kind, contact_id=_to_contact(repo, number, chosen, task, now))
    sequence = _next_sequence(repo, number)
    forwarded = forward_bundle(bundle, chosen, method.address, number, sequence, now)
    destination = method.address if method.kind == "bars" else mesh_destination(method.address, method.workflow)
    sr_id = str((task.get("focus") or {}).get("reference", "")).partition("/")[2] or None
    body = jsonio.dumps(forwarded)
    row = NewMessage(REQUEST, destination, forwarded["id"], new_id(), correlation_id, body, "json", sr_id)
    return Dispatched(method.kind, outbox_id=Outbox(repo.session).add(row, now))


def forward_bundle(bundle: Json, chosen: Site, endpoint: str, number: int, sequence: int, now: datetime) -> Json:
    """The received message addressed to ``chosen`` (module docstring)."""
    forwarded = copy.deepcopy(bundle)
    received_id = str(bundle.get("id"))
    forwarded["id"] = str(uuid.uuid5(FORWARD_NAMESPACE, f"{received_id}|{number}|{sequence}"))
    forwarded["timestamp"] = instant(now)
    header = forwarded["entry"][0]["resource"]
    hub = next((d.get("endpoint") for d in header.get("destination") or [] if isinstance(d, dict)), None)
    # The receiver by its ODS code: the site's Organization is not in the message (a reference to it would
    # not resolve in the Bundle).
    receiver = {"identifier": {"system": ODS, "value": chosen.ods_code}, "display": chosen.organisation}
    header["destination"] = [{"name": chosen.name, "endpoint": endpoint, "receiver": receiver}]
    if isinstance(hub, str) and hub:
        header["source"] = {**(header.get("source") or {}), "endpoint": hub}
    return forwarded


def _to_contact(
    repo: Repository, number: int, chosen: Site, task: Json, now: datetime, withdrawn_for: str | None = None
) -> str:
    """A CommunicationRequest on the "to contact" list: the site, how, and what to send; with
    ``withdrawn_for`` (the site it was re-routed to), what to tell a site contacted earlier instead."""
    method = chosen.methods[0]
    code, word = MEDIUM.get(method.kind, ("WRITTEN", method.kind))
    reference = next((i.get("value") for i in task.get("identifier") or [] if isinstance(i, dict)), str(number))
    if withdrawn_for is None:
        what = (
            f"Refer {reference} to {chosen.name} ({chosen.organisation}) by {word} at {method.address}: send the "
            f"referral (ServiceRequest), the patient's details and contact numbers, and the eligibility decision "
            f"with its reasons (the triage Task's inputs)."
        )
        why, suffix = "ESCAPE-pain site takes referrals only by email or phone", ""
    else:
        what = (
            f"Tell {chosen.name} ({chosen.organisation}) by {word} at {method.address} that referral {reference}, "
            f"sent to them earlier, is withdrawn: it was re-routed to {withdrawn_for}. They must not contact the "
            "patient about it."
        )
        why, suffix = "a referral this site was told of was re-routed to another site", "-withdrawn"
    request: Json = {
        "resourceType": "CommunicationRequest",
        "id": new_id(),
        "identifier": [{"system": f"{sc.ID_SITE}-contact", "value": f"{reference}-{chosen.id}{suffix}"}],
        "status": "active",
        "priority": "routine" if withdrawn_for is None else "urgent",
        "medium": [{"coding": [{"system": PARTICIPATION_MODE, "code": code}], "text": f"{word}: {method.address}"}],
        "subject": task.get("for"),
        "about": [task["focus"]] if task.get("focus") else None,
        "authoredOn": instant(now),
        "recipient": [_service_reference(chosen)],
        "reasonCode": [{"text": why}],
        "payload": [{"contentString": what}],
    }
    request = {k: v for k, v in request.items() if v is not None}
    repo.save(request, now)
    row = {
        "communication_request_id": request["id"],
        "referral_number": number,
        "site_id": chosen.id,
        "status": "open",
        "created": now,
    }
    repo.session.execute(insert(st.site_contact).values(**row))
    return str(request["id"])


def cancellation_bundle(sent: Json, reason: str, now: datetime) -> Json:
    """The BaRS cancellation of a message forwarded earlier (nhs-standards.md 1.7): the same message with a new
    id (derived from the sent one, so the same on any replay), reason ``update``, the cancellation's
    MessageDefinition, the ServiceRequest ``revoked`` and the reason as its ``reasonCode.text``."""
    cancelled = copy.deepcopy(sent)
    cancelled["id"] = str(uuid.uuid5(FORWARD_NAMESPACE, f"{sent.get('id')}|cancelled"))
    cancelled["timestamp"] = instant(now)
    header = cancelled["entry"][0]["resource"]
    header["reason"] = {"coding": [{"system": codes.CS_MESSAGE_REASON_BARS, "code": "update"}]}
    header["definition"] = codes.BARS_CANCELLED_DEFINITION
    focus = [f for f in header.get("focus") or [] if isinstance(f, dict)]
    target = str(focus[0].get("reference", "")) if focus else ""
    for entry in cancelled["entry"]:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "ServiceRequest":
            continue
        if target in (entry.get("fullUrl"), f"ServiceRequest/{resource.get('id')}") or not target:
            resource["status"] = "revoked"
            resource["reasonCode"] = [{"text": reason}]
    return cancelled


# --- re-routing ------------------------------------------------------------------------------------------
def _referral_number(task: Json) -> int:
    for ident in task.get("identifier") or []:
        value = str(ident.get("value", "")) if isinstance(ident, dict) else ""
        if value.startswith("ESCAPE-") and value[7:].isdigit():
            return int(value[7:])
    raise OutcomeError(Problem.UNPROCESSABLE, "this Task is not the triage Task of a referral held here")


def _received_bundle(repo: Repository, number: int) -> Json:
    m = t.message
    query = select(m.c.original, m.c.original_format).where(m.c.referral_number == number, m.c.reason == "new")
    row = repo.session.execute(query.limit(1)).one_or_none()
    if row is None:
        raise OutcomeError(Problem.UNPROCESSABLE, "the referral was not received as a message: nothing to forward")
    from escape_fhir.fhir.formats import parse

    return parse(bytes(row.original), row.original_format)


def reroute(repo: Repository, task: Stored, site_id: str | None, reason: str, now: datetime) -> Stored:
    """Route a held referral again (module docstring); the Task's new version."""
    number = _referral_number(task.content)
    bundle = _received_bundle(repo, number)
    try:
        wanted = request_of(read_referral(bundle).referral)
    except MappingError as exc:
        raise OutcomeError(Problem.UNPROCESSABLE, exc.issues) from None
    current = routed_site_id(task.content)
    reached = _reached(repo, number)
    if site_id is not None:
        chosen = site(repo, site_id)
        if chosen is None or not chosen.active:
            raise OutcomeError(
                Problem.UNPROCESSABLE, [Issue("error", "not-found", f"no active site {site_id!r}", "site")]
            )
        if chosen.id in reached and chosen.id != current:
            text = (
                f"{chosen.id} was sent this referral before and it was cancelled there: a site's system does not "
                "take the same referral twice; ask the referrer for a new referral, or contact the site"
            )
            raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, "site")])
        reasons = [f"re-routed by triage: {reason}"]
    else:
        routing = route(
            directory_for(repo, wanted.postcode, wanted.pathway), wanted.pathway, wanted.postcode, wanted.source
        )
        others = [c for c in routing.choices if c.site.id != current and c.site.id not in reached]
        if not others:
            text = f"no other site takes this referral ({routing.summary}); name a site to re-route to"
            raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, "site")])
        chosen = others[0].site
        reasons = [f"re-routed by triage: {reason}", *others[0].reasons]
    earlier = _withdraw_earlier(repo, number, chosen, task.content, reason, now)
    correlation = _correlation(repo, number)
    dispatched = _dispatch(repo, bundle, number, chosen, task.content, correlation, now)
    _record(repo, number, chosen, dispatched, "; ".join(reasons), now)
    inputs = [_input(sc.ROUTED_SITE, valueReference=_service_reference(chosen))]
    inputs += [_input(sc.ROUTING_REASON, valueString=r) for r in reasons]
    text = f"re-routed from {current or 'no site'} to {chosen.id}: {reason}"
    note = {"time": instant(now), "text": "; ".join([text, *earlier])}
    revised = _with_routing(task.content, inputs)
    revised["note"] = [*(revised.get("note") or []), note]
    revised["lastModified"] = instant(now)
    return repo.save(revised, now, expected_version=task.version_id)


def _reached(repo: Repository, number: int) -> set[str]:
    """The sites an earlier routing's message reached, or may have (delivered, or being sent)."""
    outbox = Outbox(repo.session)
    found = set()
    for earlier in routes_of(repo, number):
        sent = outbox.get(earlier.outbox_id) if earlier.outbox_id is not None else None
        if earlier.site_id is not None and sent is not None and sent.state in (DELIVERED, SENDING):
            found.add(earlier.site_id)
    return found


def _withdraw_earlier(repo: Repository, number: int, chosen: Site, task: Json, reason: str, now: datetime) -> list[str]:
    """Take the referral back from the sites it was routed to before (H-30): a message not yet sent is
    withdrawn; one sent (or being sent) is followed by a BaRS cancellation to the same site, which the outbox
    sends after it (the same conversation keeps its order); an open "to contact" entry is revoked, and a site
    contacted already gets an urgent entry to be told. What was done is said on the Task."""
    outbox = Outbox(repo.session)
    said = []
    why = f"re-routed to another ESCAPE-pain site ({chosen.name}): {reason}"
    for earlier in routes_of(repo, number):
        if earlier.site_id is None or earlier.site_id == chosen.id:
            continue
        if earlier.outbox_id is not None:
            sent = outbox.get(earlier.outbox_id, with_body=True)
            if outbox.withdraw(earlier.outbox_id, now, f"withdrawn: re-routed to {chosen.id}"):
                said.append(f"the message to {earlier.site_id} was not yet sent and is withdrawn")
            elif sent is not None and sent.state != DEAD:
                cancelled = cancellation_bundle(jsonio.loads(sent.body), why, now)
                if outbox.by_bundle(cancelled["id"]) is None:  # not cancelled by an earlier re-route
                    body = jsonio.dumps(cancelled)
                    message = NewMessage(
                        REQUEST, sent.destination, cancelled["id"], new_id(), sent.correlation_id, body, "json"
                    )
                    outbox.add(message, now)
                    said.append(
                        f"{earlier.site_id} may already have the referral ({sent.state}): a cancellation is sent to it"
                    )
        if earlier.contact_id is not None:
            said += _withdraw_contact(repo, number, earlier, chosen, task, why, now)
    return said


def _withdraw_contact(
    repo: Repository, number: int, earlier: Any, chosen: Site, task: Json, why: str, now: datetime
) -> list[str]:
    """An earlier routing to a site reached by email or phone: its entry revoked if nobody has contacted the
    site yet, else a new urgent entry to tell the site the referral is withdrawn."""
    c = st.site_contact
    state = repo.session.execute(
        select(c.c.status).where(c.c.communication_request_id == earlier.contact_id)
    ).scalar_one_or_none()
    current = repo.current("CommunicationRequest", earlier.contact_id)
    if state == "open" and current is not None and not current.deleted:
        revoked = {**current.content, "status": "revoked", "statusReason": {"text": why}}
        update_contact(repo, earlier.contact_id, revoked, current.version_id, now)
        return [f"the to-contact entry for {earlier.site_id} is revoked (not yet contacted)"]
    if state == "completed" and (told := site(repo, earlier.site_id)) is not None and told.methods:
        contact = _to_contact(repo, number, told, task, now, withdrawn_for=chosen.name)
        return [f"{earlier.site_id} was contacted: CommunicationRequest/{contact} asks staff to tell it"]
    return []


def _correlation(repo: Repository, number: int) -> str:
    m = t.message
    query = select(m.c.correlation_id).where(m.c.referral_number == number).order_by(m.c.received).limit(1)
    return str(repo.session.execute(query).scalar_one_or_none() or new_id())


def routes_of(repo: Repository, number: int) -> list[Any]:
    """Every routing of a referral, in order (``site_route`` rows)."""
    r = st.site_route
    return list(repo.session.execute(select(r).where(r.c.referral_number == number).order_by(r.c.sequence)))


#: The "to contact" states: what may follow each (FHIR request-status), and the list's name for it.
CONTACT_TRANSITIONS = {"active": frozenset({"completed", "revoked"})}
CONTACT_STATUS = {"active": "open", "completed": "completed", "revoked": "revoked"}
#: What staff may change on an entry of the list (the rest is the hub's record of what to do).
CONTACT_CHANGEABLE = frozenset({"status", "statusReason", "note", "meta", "text"})


def update_contact(
    repo: Repository, request_id: str, wanted: Json, expected: int, now: datetime, where: str = ""
) -> Stored:
    """Mark an entry of the "to contact" list done or no longer needed (``PUT /CommunicationRequest/{id}``, or
    a transaction's PUT entry): the version precondition, then only ``status`` (active -> completed or revoked,
    a revoked one with its ``statusReason``), ``statusReason`` and ``note`` may change; the list follows in the
    same transaction. ``where`` prefixes the issues' locations (a transaction entry)."""
    prefix = f"{where}.resource" if where else "CommunicationRequest"
    at = f"{where}.request.ifMatch" if where else "If-Match"
    current = repo.current("CommunicationRequest", request_id)
    row = repo.session.execute(
        select(st.site_contact.c.status).where(st.site_contact.c.communication_request_id == request_id)
    ).one_or_none()
    if current is None or current.deleted or row is None:
        text = f"CommunicationRequest/{request_id} is not on the to-contact list (only its entries can be updated)"
        raise OutcomeError(Problem.NOT_FOUND, text, location=where)
    check_version(current, expected, at)
    who = "an entry of the to-contact list may change only status, statusReason and note"
    check_only_changed(current.content, wanted, CONTACT_CHANGEABLE, who, prefix)
    old, new = str(current.content.get("status")), str(wanted.get("status"))
    if new != old and new not in CONTACT_TRANSITIONS.get(old, frozenset()):
        text = f"an entry that is {old} cannot become {new}" + (
            "" if old != "active" else ": mark it completed (done) or revoked (no longer needed)"
        )
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, f"{prefix}.status")])
    if new == "revoked" and not wanted.get("statusReason"):
        text = "a revoked entry needs a statusReason (why the site is no longer to be contacted)"
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "required", text, f"{prefix}.statusReason")])
    stored = save_version(repo, wanted, now, expected, at)
    c = st.site_contact
    repo.session.execute(
        c.update().where(c.c.communication_request_id == request_id).values(status=CONTACT_STATUS[new])
    )
    return stored


def contact_list(repo: Repository, status: str | None, base: str) -> Json:
    """The "to contact" list as a searchset of CommunicationRequests, oldest first (``status`` ``active``:
    still to do; ``completed``: done; ``revoked``: no longer needed; None: all)."""
    from escape_fhir.service.rest import _bundle

    c = st.site_contact
    query = select(c.c.communication_request_id).order_by(c.c.created, c.c.communication_request_id)
    if status is not None:
        query = query.where(c.c.status == CONTACT_STATUS[status])
    ids = list(repo.session.execute(query).scalars())
    found = repo.currents([("CommunicationRequest", i) for i in ids])
    entries = [
        {"fullUrl": f"{base}/CommunicationRequest/{i}", "resource": found[key].content, "search": {"mode": "match"}}
        for i in ids
        if (key := ("CommunicationRequest", i)) in found
    ]
    return _bundle("searchset", entries, len(entries), [("self", f"{base}/CommunicationRequest")])
