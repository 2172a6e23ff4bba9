"""FHIR R4 Subscriptions with the rest-hook channel (subscription.html), delivered through the outbox.

* A client creates a Subscription (``POST /Subscription``) with ``criteria`` a search of this server
  (``Task?status=requested``), ``channel.type`` ``rest-hook``, ``channel.endpoint`` an http(s) URL,
  optionally ``channel.payload`` (``application/fhir+json`` or ``application/fhir+xml``) and
  ``channel.header`` (``Name: value`` strings sent with every notification). The server makes it ``active``.
* Every write transaction (:attr:`escape_fhir.storage.Database.write_hooks`) checks what it wrote against the
  criteria of the active Subscriptions with the search engine itself (the criteria plus ``_id`` of the
  written resources), and queues one outbox row per matching new version, in the same transaction: a
  committed change always has its notifications, a rolled-back one never; the row's unique key
  ``Subscription/{id}/{Type}/{id}/_history/{version}`` makes it one notification per event.
* The outbox runner sends them (:mod:`escape_fhir.transport.notify`): without a payload a ``POST`` with no
  body to the endpoint; with one, a ``PUT [endpoint]/{Type}/{id}`` of the resource (R4 subscription.html
  "rest-hook"). Retries and dead-lettering are the outbox's. A failed attempt turns the Subscription's
  ``status`` to ``error`` with the reason in ``error``; the next delivery turns it back to ``active``.
  ``GET /Subscription/{id}/$status`` shows the status, the last error and the counts of its notifications.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import func, select

from escape_fhir.errors import Issue
from escape_fhir.fhir.formats import dump
from escape_fhir.service.common import new_id, now
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.search import PARAMETERS, parse_query
from escape_fhir.storage import Database, Repository, Stored
from escape_fhir.storage import tables as t
from escape_fhir.storage.outbox import NewMessage, Outbox
from escape_fhir.storage.search_sql import IdMatch, TokenMatch

Json = dict[str, Any]
#: The outbox kind of a notification.
NOTIFICATION = "notification"
PAYLOADS = {"application/fhir+json": "json", "application/json": "json", "application/fhir+xml": "xml"}
#: Subscriptions checked per write (a bound: each is one search).
MAX_SUBSCRIPTIONS = 100
_LIVE = TokenMatch("status", ((None, "active"), (None, "error")))


def _bad(text: str, where: str) -> OutcomeError:
    return OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "business-rule", text, where)])


def criteria(subscription: Json) -> tuple[str, list[tuple[str, str]]]:
    """The type and parameters of ``Subscription.criteria``; OutcomeError when it is no search of ours."""
    text = subscription.get("criteria")
    if not isinstance(text, str) or not text:
        raise _bad(
            "criteria is required (a search of this server, e.g. Task?status=requested)", "Subscription.criteria"
        )
    kind, _, query = text.partition("?")
    if kind not in PARAMETERS:
        raise _bad(
            f"criteria must search a type of this server ({', '.join(sorted(PARAMETERS))})", "Subscription.criteria"
        )
    pairs = parse_qsl(query, keep_blank_values=True)
    try:
        checked = parse_query(kind, pairs)
    except OutcomeError as exc:
        raise _bad(f"criteria: {exc}", "Subscription.criteria") from None
    if checked.includes or checked.sort or checked.summary or checked.elements:
        raise _bad(
            "criteria takes search parameters only (no _include, _sort, _summary, _elements)", "Subscription.criteria"
        )
    return kind, pairs


def check(subscription: Json, hosts: frozenset[str] | None = None) -> None:
    """What a Subscription must hold to be accepted (422 otherwise, naming the element).

    ``hosts``: the ``host`` or ``host:port`` an endpoint may name (Settings.subscription_hosts); None: any.
    """
    criteria(subscription)
    channel: Json = subscription["channel"] if isinstance(subscription.get("channel"), dict) else {}
    if channel.get("type") != "rest-hook":
        raise _bad("channel.type must be rest-hook (the only channel this server sends)", "Subscription.channel.type")
    endpoint = channel.get("endpoint")
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad("channel.endpoint must be an http or https URL", "Subscription.channel.endpoint")
    if hosts is not None and not {(parts.hostname or "").lower(), parts.netloc.rpartition("@")[2].lower()} & hosts:
        allowed = ", ".join(sorted(hosts)) or "none (set ESCAPE_FHIR_SUBSCRIPTION_HOSTS)"
        raise _bad(
            f"channel.endpoint's host {parts.netloc!r} is not one this server may notify; allowed: {allowed}",
            "Subscription.channel.endpoint",
        )
    payload = channel.get("payload")
    if payload is not None and payload not in PAYLOADS:
        raise _bad(f"channel.payload must be one of {', '.join(PAYLOADS)} or absent", "Subscription.channel.payload")
    for n, header in enumerate(channel.get("header") or []):
        name, colon, _ = str(header).partition(":")
        if not colon or not name.strip() or any(c in str(header) for c in "\r\n"):
            raise _bad("each channel.header is 'Name: value' on one line", f"Subscription.channel.header[{n}]")
    if subscription.get("status") not in ("requested", "active", "off"):
        raise _bad("status must be requested, active or off (error is set by this server)", "Subscription.status")


def _accepted(subscription: Json, resource_id: str) -> Json:
    out = {**subscription, "id": resource_id}
    if out["status"] == "requested":
        out["status"] = "active"
    out.pop("error", None)
    return out


def create(db: Database, subscription: Json, hosts: frozenset[str] | None = None) -> Stored:
    check(subscription, hosts)
    with db.write() as repo:
        return repo.save(_accepted(subscription, new_id()), now())


def update(
    db: Database, subscription_id: str, subscription: Json, expected: int | None, hosts: frozenset[str] | None = None
) -> Stored:
    check(subscription, hosts)
    with db.write() as repo:
        current = repo.current("Subscription", subscription_id)
        if current is None or current.deleted:
            raise OutcomeError(Problem.NOT_FOUND, f"Subscription/{subscription_id} is not known")
        if expected is not None and expected != current.version_id:
            text = f"If-Match names version {expected}; the current version is {current.version_id}"
            raise OutcomeError(Problem.PRECONDITION_FAILED, text, location="If-Match")
        return repo.save(_accepted(subscription, subscription_id), now())


def delete(db: Database, subscription_id: str) -> None:
    with db.write() as repo:
        current = repo.current("Subscription", subscription_id)
        if current is None or current.deleted:
            raise OutcomeError(Problem.NOT_FOUND, f"Subscription/{subscription_id} is not known")
        repo.save(current.content, now(), deleted=True)


# --- queueing notifications --------------------------------------------------------------------------------
def queue_notifications(repo: Repository) -> None:
    """The write hook: queue a notification for each written version a live Subscription's criteria match."""
    latest: dict[tuple[str, str], Stored] = {}
    for stored in repo.written:
        if stored.resource_type != "Subscription":
            latest[(stored.resource_type, stored.resource_id)] = stored
    written = {k: s for k, s in latest.items() if not s.deleted}
    if not written:
        return
    subscriptions, _ = repo.search("Subscription", conditions=[_LIVE], count=MAX_SUBSCRIPTIONS, total=False)
    outbox = Outbox(repo.session)
    for sub in subscriptions:
        try:
            kind, pairs = criteria(sub.content)
        except OutcomeError as exc:
            # Accepted once, no longer a search of this server (a parameter withdrawn by an upgrade): the
            # Subscription shows why; the change that is being written is never refused for it.
            repo.save({**sub.content, "status": "error", "error": f"criteria no longer accepted: {exc}"}, now())
            continue
        ids = tuple(rid for (k, rid) in written if k == kind)
        if not ids:
            continue
        query = parse_query(kind, pairs)
        matched, _ = repo.search(kind, conditions=[*query.conditions, IdMatch(ids)], count=len(ids), total=False)
        for found in matched:
            outbox.add(_notification(sub, written[(kind, found.resource_id)]), now())


def _notification(sub: Stored, event: Stored) -> NewMessage:
    channel = sub.content["channel"]
    fmt = PAYLOADS.get(channel.get("payload") or "", "")
    body = dump(event.content, fmt) if fmt else b""
    key = f"Subscription/{sub.resource_id}/{event.resource_type}/{event.resource_id}/_history/{event.version_id}"
    return NewMessage(
        kind=NOTIFICATION,
        destination=str(channel["endpoint"]),
        bundle_id=key,
        request_id=new_id(),
        correlation_id=sub.resource_id,
        body=body,
        body_format=fmt,
        subscription_id=sub.resource_id,
    )


def attach(db: Database) -> Database:
    """Make ``db`` queue Subscription notifications in every write transaction (once)."""
    if queue_notifications not in db.write_hooks:
        db.write_hooks.append(queue_notifications)
    return db


# --- results and status ------------------------------------------------------------------------------------
def record_result(db: Database, subscription_id: str, error: str | None) -> None:
    """After a notification attempt: ``status`` error with the reason, or active again once one is delivered."""
    with db.write() as repo:
        current = repo.current("Subscription", subscription_id)
        if current is None or current.deleted or current.content.get("status") == "off":
            return
        content = dict(current.content)
        if error is None and content.get("status") == "error":
            content["status"] = "active"
            content.pop("error", None)
        elif error is not None and (content.get("status"), content.get("error")) != ("error", error):
            content["status"], content["error"] = "error", error
        else:
            return
        repo.save(content, now())


def status(db: Database, subscription_id: str) -> Json:
    """``$status``-style Parameters: the Subscription's status and error and its notifications by state."""
    o = t.outbox
    with db.read() as repo:
        current = repo.current("Subscription", subscription_id)
        if current is None or current.deleted:
            raise OutcomeError(Problem.NOT_FOUND, f"Subscription/{subscription_id} is not known")
        by_state = select(o.c.state, func.count()).where(o.c.subscription_id == subscription_id).group_by(o.c.state)
        counts = {str(state): int(number) for state, number in repo.session.execute(by_state).all()}
        last = repo.session.execute(
            select(o.c.last_error, o.c.updated)
            .where(o.c.subscription_id == subscription_id, o.c.last_error.is_not(None))
            .order_by(o.c.updated.desc())
            .limit(1)
        ).one_or_none()
    params: list[Json] = [
        {"name": "subscription", "valueReference": {"reference": f"Subscription/{subscription_id}"}},
        {"name": "status", "valueCode": str(current.content.get("status"))},
    ]
    if current.content.get("error"):
        params.append({"name": "error", "valueString": str(current.content["error"])})
    for state in ("pending", "sending", "delivered", "dead"):
        params.append({"name": f"notifications-{state}", "valueInteger": int(counts.get(state, 0))})
    if last is not None:
        params.append({"name": "last-error", "valueString": str(last.last_error)})
    return {"resourceType": "Parameters", "parameter": params}


def headers_of(subscription: Json) -> dict[str, str]:
    """``channel.header`` as a header map (``Name: value`` strings)."""
    out = {}
    for header in (subscription.get("channel") or {}).get("header") or []:
        name, _, value = str(header).partition(":")
        out[name.strip()] = value.strip()
    return out


def event_key(bundle_id: str) -> tuple[str, str] | None:
    """(type, id) of the resource a notification's outbox key names."""
    parts = bundle_id.split("/")
    return (parts[2], parts[3]) if len(parts) == 6 and parts[0] == "Subscription" else None


__all__: Sequence[str] = ["NOTIFICATION", "attach", "check", "create", "queue_notifications", "record_result", "status"]
