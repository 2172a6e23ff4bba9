"""The repository: every query the services need, over one SQLAlchemy session (one transaction).

Resources are kept as FHIR JSON text written by :mod:`escape_fhir.fhir.jsonio` (decimals exact). Each write
adds a version (FHIR http.html#update: ``meta.versionId`` and ``meta.lastUpdated`` set by the server) and
moves the current-version row and the search tokens along with it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, delete, exists, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from escape_fhir.fhir import jsonio
from escape_fhir.storage import tables as t
from escape_fhir.storage.index import Entries, index_of
from escape_fhir.storage.search_sql import Condition, SortKey, compile_condition, sort_expression

Json = dict[str, Any]
#: A resource's type and id.
Key = tuple[str, str]


class VersionConflict(Exception):
    """The current version is not the one the caller expected (If-Match, FHIR http.html#concurrency)."""

    def __init__(self, current: int | None) -> None:
        self.current = current
        super().__init__(f"current version is {current}")


@dataclass(frozen=True)
class Stored:
    resource_type: str
    resource_id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    content: Json


@dataclass(frozen=True)
class TokenFilter:
    """Match resources having ``param`` equal to any of ``values`` (``(system or None, value)`` pairs)."""

    param: str
    values: tuple[tuple[str | None, str], ...]


@dataclass(frozen=True)
class MessageRecord:
    bundle_id: str
    request_id: str
    correlation_id: str
    reason: str
    referral_number: int | None
    response: Json
    #: The canonical content hash (escape_fhir.fhir.canonical); None for messages logged before it was kept.
    content_hash: str | None = None


@dataclass(frozen=True)
class LoggedMessage:
    """What the log holds of a message already received: enough to tell a retry from a reused Bundle id."""

    content_hash: str | None
    original: bytes
    original_format: str


@dataclass(frozen=True)
class ReferralRecord:
    number: int
    service_request_id: str
    task_id: str
    encounter_id: str
    sender_identifier: str | None


def instant(moment: datetime) -> str:
    """FHIR instant with milliseconds in UTC, as written in ``meta.lastUpdated``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _stored(row: Any) -> Stored:
    return Stored(
        row.resource_type, row.resource_id, row.version_id, row.last_updated, row.deleted, jsonio.loads(row.content)
    )


def _with_meta(resource: Json, version: int, stamp: str) -> Json:
    """``resource`` with the server's ``meta.versionId`` and ``meta.lastUpdated`` (its other meta kept)."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    content = {"resourceType": resource["resourceType"], "id": resource["id"]}
    content["meta"] = {"versionId": str(version), "lastUpdated": stamp, **meta}
    content.update({k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")})
    return content


def _version_row(s: Stored) -> dict[str, Any]:
    return _current_row(s) | {"content": jsonio.dumps(s.content).decode("utf-8")}


def _current_row(s: Stored) -> dict[str, Any]:
    return {
        "resource_type": s.resource_type,
        "resource_id": s.resource_id,
        "version_id": s.version_id,
        "last_updated": s.last_updated,
        "deleted": s.deleted,
    }


def _moved_row(s: Stored) -> dict[str, Any]:
    """Parameters of the update of a current row (``key_*`` name the row: a column's name would be SET)."""
    return {
        "key_type": s.resource_type,
        "key_id": s.resource_id,
        "version_id": s.version_id,
        "last_updated": s.last_updated,
        "deleted": s.deleted,
    }


def _index_rows(s: Stored, entries: Entries, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Add the index rows of ``s`` to ``rows`` (one list per index table)."""
    key = {"resource_type": s.resource_type, "resource_id": s.resource_id}
    rows["token"] += [key | {"param": e.param, "system": e.system, "value": e.value} for e in entries.tokens]
    rows["string"] += [key | {"param": e.param, "value": e.value, "norm": e.norm} for e in entries.strings]
    rows["date"] += [key | {"param": e.param, "low": e.low, "high": e.high} for e in entries.dates]


# Statements built once and executed with bound parameters (lists of them: executemany), so a write costs
# no statement construction and each statement's compiled form comes from the cache.
_c, _v, _s = t.resource_current, t.resource_version, t.search_token
_VERSION_COLUMNS = (
    _v.c.resource_type,
    _v.c.resource_id,
    _v.c.version_id,
    _v.c.last_updated,
    _v.c.deleted,
    _v.c.content,
)
#: Keys per statement that reads current rows: a message's resources take one.
_KEYS_PER_QUERY = 50


def _key_params(keys: Sequence[Key]) -> dict[str, str]:
    params = {}
    for n, (kind, rid) in enumerate(keys):
        params[f"t{n}"], params[f"i{n}"] = kind, rid
    return params


@functools.cache
def _select_current(count: int, *, content: bool, lock: bool) -> Select[Any]:
    """The current rows of ``count`` keys (bound as t0, i0, t1, i1...), with their content or not.

    Written as ``(type = :t0 AND id = :i0) OR ...`` because SQLite scans the whole table for the row-value
    form ``(type, id) IN (VALUES ...)``; both databases look each pair up in the primary key. ``lock``
    (PostgreSQL) locks the rows until the commit, always in key order so two writers cannot deadlock.
    """
    match = or_(
        *(and_(_c.c.resource_type == bindparam(f"t{n}"), _c.c.resource_id == bindparam(f"i{n}")) for n in range(count))
    )
    if content:
        same = and_(
            _c.c.resource_type == _v.c.resource_type,
            _c.c.resource_id == _v.c.resource_id,
            _c.c.version_id == _v.c.version_id,
        )
        query = select(*_VERSION_COLUMNS).join(_c, same)
    else:
        query = select(_c.c.resource_type, _c.c.resource_id, _c.c.version_id)
    query = query.where(match).order_by(_c.c.resource_type, _c.c.resource_id)
    return query.with_for_update(of=_c) if lock else query


_SELECT_VERSION = select(*_VERSION_COLUMNS).where(
    _v.c.resource_type == bindparam("resource_type"),
    _v.c.resource_id == bindparam("resource_id"),
    _v.c.version_id == bindparam("version_id"),
)
_SELECT_HISTORY = (
    select(*_VERSION_COLUMNS)
    .where(_v.c.resource_type == bindparam("resource_type"), _v.c.resource_id == bindparam("resource_id"))
    .order_by(_v.c.version_id.desc())
)
_INSERT_VERSION = insert(_v)
_INSERT_CURRENT = insert(_c)
_UPDATE_CURRENT = (
    update(_c)
    .where(_c.c.resource_type == bindparam("key_type"), _c.c.resource_id == bindparam("key_id"))
    .values(version_id=bindparam("version_id"), last_updated=bindparam("last_updated"), deleted=bindparam("deleted"))
)
#: Per index table: the statement that removes a resource's rows and the one that adds rows.
_INDEX = {
    name: (
        delete(table).where(table.c.resource_type == bindparam("key_type"), table.c.resource_id == bindparam("key_id")),
        insert(table),
    )
    for name, table in (("token", _s), ("string", t.search_string), ("date", t.search_date))
}


_m, _r = t.message, t.message_request
_REQUEST_SEEN = select(exists().where(_r.c.request_id == bindparam("request_id")))
_LOGGED = select(
    exists().where(_r.c.request_id == bindparam("request_id")),
    exists().where(_m.c.bundle_id == bindparam("bundle_id")),
)
_SELECT_MESSAGE = select(
    _m.c.bundle_id,
    _m.c.request_id,
    _m.c.correlation_id,
    _m.c.reason,
    _m.c.referral_number,
    _m.c.response,
    _m.c.content_hash,
).where(_m.c.bundle_id == bindparam("bundle_id"))
_SELECT_LOGGED = select(_m.c.content_hash, _m.c.original, _m.c.original_format).where(
    _m.c.bundle_id == bindparam("bundle_id")
)
_SELECT_REQUEST_BUNDLE = select(_r.c.bundle_id).where(_r.c.request_id == bindparam("request_id"))
_INSERT_REQUEST = insert(_r)
_INSERT_MESSAGE = insert(_m)
_FINISH_MESSAGE = update(_m).where(_m.c.bundle_id == bindparam("key"))
_INSERT_REFERRAL = insert(t.referral).returning(t.referral.c.number)
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


class Repository:
    def __init__(self, session: Session) -> None:
        self.session = session
        #: Every version written in this transaction, in order (what write hooks such as Subscriptions see).
        self.written: list[Stored] = []

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # --- resources ----------------------------------------------------------------------------------
    def current(self, resource_type: str, resource_id: str) -> Stored | None:
        """The current version (a deletion version included: its ``deleted`` is True)."""
        return self.currents([(resource_type, resource_id)]).get((resource_type, resource_id))

    def currents(self, keys: Sequence[Key], *, lock: bool = False) -> dict[Key, Stored]:
        """The current version of each of ``keys`` held (one query); ``lock`` keeps them until the commit
        on PostgreSQL (``FOR UPDATE``), so what is read is what a following save replaces."""
        rows = self._current_rows(keys, content=True, lock=lock and self.dialect == "postgresql")
        return {(row.resource_type, row.resource_id): _stored(row) for row in rows}

    def _current_rows(self, keys: Sequence[Key], *, content: bool, lock: bool) -> list[Any]:
        unique = sorted(set(keys))  # one locking order for every writer
        rows: list[Any] = []
        for start in range(0, len(unique), _KEYS_PER_QUERY):
            chunk = unique[start : start + _KEYS_PER_QUERY]
            query = _select_current(len(chunk), content=content, lock=lock)
            rows += self.session.execute(query, _key_params(chunk)).all()
        return rows

    def version(self, resource_type: str, resource_id: str, version_id: int) -> Stored | None:
        params = {"resource_type": resource_type, "resource_id": resource_id, "version_id": version_id}
        row = self.session.execute(_SELECT_VERSION, params).one_or_none()
        return _stored(row) if row else None

    def history(self, resource_type: str, resource_id: str) -> list[Stored]:
        params = {"resource_type": resource_type, "resource_id": resource_id}
        return [_stored(r) for r in self.session.execute(_SELECT_HISTORY, params)]

    def save(
        self, resource: Json, now: datetime, *, expected_version: int | None = None, deleted: bool = False
    ) -> Stored:
        """Store ``resource`` (its ``id`` set) as a new version; VersionConflict if ``expected_version`` is stale."""
        return self._write([(resource, expected_version, deleted)], now)[0]

    def save_all(self, resources: Sequence[Json], now: datetime) -> list[Stored]:
        """Store each of ``resources`` as a new version, in order, with a handful of statements whatever their
        number (the resources of one message); a resource given twice gets two versions."""
        return self._write([(r, None, False) for r in resources], now)

    def _write(self, items: Sequence[tuple[Json, int | None, bool]], now: datetime) -> list[Stored]:
        # One select of the current versions, then one executemany per table: the version rows, the
        # current rows (inserted or moved on), the old tokens deleted and the new ones inserted.
        held = self._current_versions([(r["resourceType"], r["id"]) for r, _, _ in items])
        latest, stamp = dict(held), instant(now)
        stored: list[Stored] = []
        for resource, expected, deleted in items:
            key = (resource["resourceType"], resource["id"])
            if expected is not None and latest.get(key) != expected:
                raise VersionConflict(latest.get(key))
            latest[key] = version = latest.get(key, 0) + 1
            stored.append(Stored(*key, version, now, deleted, _with_meta(resource, version, stamp)))
        self.session.execute(_INSERT_VERSION, [_version_row(s) for s in stored])
        final = {(s.resource_type, s.resource_id): s for s in stored}  # the last version of each
        if created := [_current_row(s) for key, s in final.items() if key not in held]:
            self.session.execute(_INSERT_CURRENT, created)
        if moved := [_moved_row(s) for key, s in final.items() if key in held]:
            self.session.execute(_UPDATE_CURRENT, moved)
            keys = [{"key_type": r["key_type"], "key_id": r["key_id"]} for r in moved]
            for remove, _ in _INDEX.values():
                self.session.execute(remove, keys)
        rows: dict[str, list[dict[str, Any]]] = {"token": [], "string": [], "date": []}
        for s in final.values():
            if not s.deleted:
                _index_rows(s, index_of(s.content), rows)
        for name, (_, add) in _INDEX.items():
            if rows[name]:
                self.session.execute(add, rows[name])
        self.written += stored
        return stored

    def _current_versions(self, keys: Sequence[Key]) -> dict[Key, int]:
        """Current version of each key held; on PostgreSQL locked until the commit, in one order always."""
        rows = self._current_rows(keys, content=False, lock=self.dialect == "postgresql")
        return {(row.resource_type, row.resource_id): row.version_id for row in rows}

    def lock_names(self, names: Sequence[str]) -> None:
        """Hold a lock on each of ``names`` until the commit, so that writers naming the same thing (a
        conditional create of one identifier) take turns: PostgreSQL transaction-level advisory locks, taken in
        one order always (no deadlock). SQLite needs none: its writers take turns already (``BEGIN IMMEDIATE``)."""
        if self.dialect != "postgresql":
            return
        for name in sorted(set(names)):
            key = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)
            self.session.execute(_ADVISORY_LOCK, {"k": key})

    # --- search -------------------------------------------------------------------------------------
    def search(
        self,
        resource_type: str,
        filters: Sequence[TokenFilter] = (),
        updated: Sequence[tuple[str, datetime]] = (),
        *,
        conditions: Sequence[Condition] = (),
        sort: Sequence[SortKey] = (),
        newest_first: bool = False,
        count: int = 20,
        offset: int = 0,
        total: bool = True,
    ) -> tuple[list[Stored], int]:
        """Current, not deleted resources matching every filter and condition; one page and the total (-1 when
        ``total`` is False: the count query is skipped)."""
        c = t.resource_current
        where = [c.c.resource_type == resource_type, c.c.deleted.is_(False)]
        where += [self._token_match(resource_type, f) for f in filters]
        where += [compile_condition(resource_type, cond, self.dialect) for cond in conditions]
        for op, bound in updated:
            where.append(
                {"ge": c.c.last_updated >= bound, "gt": c.c.last_updated > bound, "lt": c.c.last_updated < bound}[op]
            )
        found = -1
        if total:
            found = int(self.session.execute(select(func.count()).select_from(c).where(*where)).scalar_one())
        if count == 0:
            return [], found
        order = [sort_expression(resource_type, key) for key in sort]
        order += [c.c.last_updated.desc() if newest_first else c.c.last_updated.asc(), c.c.resource_id]
        page = select(c.c.resource_id, c.c.version_id).where(*where).order_by(*order).limit(count).offset(offset)
        rows = self.session.execute(page).all()
        versions = self.currents([(resource_type, rid) for rid, _ in rows])
        return [versions[(resource_type, rid)] for rid, _ in rows if (resource_type, rid) in versions], found

    def references(self, resource_type: str, ids: Sequence[str], param: str) -> list[str]:
        """The references (as written) that ``param`` of the given resources holds, in one query."""
        if not ids:
            return []
        s = t.search_token
        query = select(s.c.value).where(
            s.c.resource_type == resource_type, s.c.param == param, s.c.resource_id.in_(ids)
        )
        return list(dict.fromkeys(str(v) for v in self.session.execute(query).scalars()))

    def referring(self, resource_type: str, param: str, refs: Sequence[str], limit: int) -> list[Stored]:
        """Current resources of ``resource_type`` whose ``param`` is one of ``refs`` (``_revinclude``)."""
        if not refs:
            return []
        s = t.search_token
        ids = select(s.c.resource_id).where(s.c.resource_type == resource_type, s.c.param == param, s.c.value.in_(refs))
        c = t.resource_current
        query = (
            select(c.c.resource_id)
            .where(c.c.resource_type == resource_type, c.c.deleted.is_(False), c.c.resource_id.in_(ids))
            .order_by(c.c.resource_id)
            .limit(limit)
        )
        keys = [(resource_type, str(rid)) for rid in self.session.execute(query).scalars()]
        found = self.currents(keys)
        return [found[k] for k in keys if k in found]

    def _token_match(self, resource_type: str, flt: TokenFilter) -> Any:
        s, c = t.search_token, t.resource_current
        alternatives = []
        for system, value in flt.values:
            cond = s.c.value == value
            alternatives.append(cond if system is None else and_(cond, s.c.system == system))
        sub = select(s.c.resource_id).where(s.c.resource_type == resource_type, s.c.param == flt.param)
        return c.c.resource_id.in_(sub.where(or_(*alternatives)))

    # --- the message log ----------------------------------------------------------------------------
    def request_seen(self, request_id: str) -> bool:
        return bool(self.session.execute(_REQUEST_SEEN, {"request_id": request_id}).scalar_one())

    def request_bundle(self, request_id: str) -> str | None:
        """The Bundle id a logged request id came with, or None."""
        found = self.session.execute(_SELECT_REQUEST_BUNDLE, {"request_id": request_id}).scalar_one_or_none()
        return str(found) if found is not None else None

    def logged(self, request_id: str, bundle_id: str) -> tuple[bool, bool]:
        """Whether the request id is logged and whether the message is (one query)."""
        row = self.session.execute(_LOGGED, {"request_id": request_id, "bundle_id": bundle_id}).one()
        return bool(row[0]), bool(row[1])

    def message(self, bundle_id: str) -> MessageRecord | None:
        row = self.session.execute(_SELECT_MESSAGE, {"bundle_id": bundle_id}).one_or_none()
        if row is None:
            return None
        return MessageRecord(
            row.bundle_id,
            row.request_id,
            row.correlation_id,
            row.reason,
            row.referral_number,
            jsonio.loads(row.response),
            row.content_hash,
        )

    def logged_message(self, bundle_id: str) -> LoggedMessage | None:
        """The hash and original bytes of a message already logged under ``bundle_id``, or None."""
        row = self.session.execute(_SELECT_LOGGED, {"bundle_id": bundle_id}).one_or_none()
        return LoggedMessage(row.content_hash, bytes(row.original), row.original_format) if row else None

    def record_request(self, request_id: str, bundle_id: str, now: datetime) -> None:
        """Log a request id; a repeated one fails on the primary key (IntegrityError)."""
        self.session.execute(_INSERT_REQUEST, {"request_id": request_id, "bundle_id": bundle_id, "received": now})

    def claim_message(self, record: MessageRecord, now: datetime, original: bytes, fmt: str) -> None:
        """Log a message before processing it; a Bundle id already logged fails (IntegrityError).

        On PostgreSQL a second transaction inserting the same id waits here until the first one ends, so
        exactly one of two simultaneous deliveries goes on to process the message.
        """
        row = {
            "bundle_id": record.bundle_id,
            "request_id": record.request_id,
            "correlation_id": record.correlation_id,
            "received": now,
            "reason": record.reason,
            "referral_number": record.referral_number,
            "original": original,
            "original_format": fmt,
            "response": "{}",
            "content_hash": record.content_hash,
        }
        self.session.execute(_INSERT_MESSAGE, row)

    def finish_message(self, bundle_id: str, referral_number: int | None, response: Json) -> bytes:
        """Keep the response for replay; returns it as written (JSON bytes), to be sent as it is."""
        data = jsonio.dumps(response)
        params = {"key": bundle_id, "referral_number": referral_number, "response": data.decode("utf-8")}
        self.session.execute(_FINISH_MESSAGE, params)
        return data

    # --- referrals ----------------------------------------------------------------------------------
    def add_referral(self, record: ReferralRecord, now: datetime) -> int:
        """A new referral number; a sender identifier already used fails (IntegrityError)."""
        row = {
            "service_request_id": record.service_request_id,
            "task_id": record.task_id,
            "encounter_id": record.encounter_id,
            "sender_identifier": record.sender_identifier,
            "created": now,
        }
        return int(self.session.execute(_INSERT_REFERRAL, row).scalar_one())

    def referral(
        self, *, number: int | None = None, sender_identifier: str | None = None, service_request_id: str | None = None
    ) -> ReferralRecord | None:
        r = t.referral
        query = select(r.c.number, r.c.service_request_id, r.c.task_id, r.c.encounter_id, r.c.sender_identifier)
        if number is not None:
            query = query.where(r.c.number == number)
        elif sender_identifier is not None:
            query = query.where(r.c.sender_identifier == sender_identifier)
        elif service_request_id is not None:
            query = query.where(r.c.service_request_id == service_request_id)
        else:
            return None
        row = self.session.execute(query).one_or_none()
        return ReferralRecord(*row) if row else None

    def referral_resources(self, number: int) -> dict[str, tuple[str, str]]:
        """Sender key -> (type, our id) of a referral's resources."""
        rr = t.referral_resource
        rows = self.session.execute(
            select(rr.c.sender_key, rr.c.resource_type, rr.c.resource_id).where(rr.c.referral_number == number)
        )
        return {row.sender_key: (row.resource_type, row.resource_id) for row in rows}

    def map_resources(self, number: int, mapping: dict[str, tuple[str, str]]) -> None:
        if mapping:
            rows = [
                {"referral_number": number, "sender_key": k, "resource_type": kind, "resource_id": rid}
                for k, (kind, rid) in mapping.items()
            ]
            self.session.execute(insert(t.referral_resource), rows)
