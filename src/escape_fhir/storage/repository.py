"""The repository: every query the services need, over one SQLAlchemy session (one transaction).

Resources are kept as FHIR JSON text written by :mod:`escape_fhir.fhir.jsonio` (decimals exact). Each write
adds a version (FHIR http.html#update: ``meta.versionId`` and ``meta.lastUpdated`` set by the server) and
moves the current-version row and the search tokens along with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from escape_fhir.fhir import jsonio
from escape_fhir.storage import tables as t
from escape_fhir.storage.index import tokens_of

Json = dict[str, Any]


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


class Repository:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # --- resources ----------------------------------------------------------------------------------
    def _versions(self) -> Select[Any]:
        v = t.resource_version
        return select(v.c.resource_type, v.c.resource_id, v.c.version_id, v.c.last_updated, v.c.deleted, v.c.content)

    def current(self, resource_type: str, resource_id: str) -> Stored | None:
        """The current version (a deletion version included: its ``deleted`` is True)."""
        c, v = t.resource_current, t.resource_version
        query = self._versions().join(
            c,
            and_(
                c.c.resource_type == v.c.resource_type,
                c.c.resource_id == v.c.resource_id,
                c.c.version_id == v.c.version_id,
            ),
        )
        row = self.session.execute(
            query.where(c.c.resource_type == resource_type, c.c.resource_id == resource_id)
        ).one_or_none()
        return _stored(row) if row else None

    def version(self, resource_type: str, resource_id: str, version_id: int) -> Stored | None:
        v = t.resource_version
        query = self._versions().where(
            v.c.resource_type == resource_type, v.c.resource_id == resource_id, v.c.version_id == version_id
        )
        row = self.session.execute(query).one_or_none()
        return _stored(row) if row else None

    def history(self, resource_type: str, resource_id: str) -> list[Stored]:
        v = t.resource_version
        query = self._versions().where(v.c.resource_type == resource_type, v.c.resource_id == resource_id)
        return [_stored(r) for r in self.session.execute(query.order_by(v.c.version_id.desc()))]

    def _current_version(self, resource_type: str, resource_id: str) -> int | None:
        c = t.resource_current
        query = select(c.c.version_id).where(c.c.resource_type == resource_type, c.c.resource_id == resource_id)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        return self.session.execute(query).scalar_one_or_none()

    def save(
        self, resource: Json, now: datetime, *, expected_version: int | None = None, deleted: bool = False
    ) -> Stored:
        """Store ``resource`` (its ``id`` set) as a new version; VersionConflict if ``expected_version`` is stale."""
        kind, rid = resource["resourceType"], resource["id"]
        current = self._current_version(kind, rid)
        if expected_version is not None and current != expected_version:
            raise VersionConflict(current)
        version = (current or 0) + 1
        meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
        content = {"resourceType": kind, "id": rid, "meta": {"versionId": str(version), "lastUpdated": instant(now)}}
        content["meta"].update(meta)
        content.update({k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")})
        text = jsonio.dumps(content).decode("utf-8")
        self.session.execute(
            insert(t.resource_version).values(
                resource_type=kind, resource_id=rid, version_id=version, last_updated=now, deleted=deleted, content=text
            )
        )
        self._move_current(kind, rid, version, now, deleted, first=current is None)
        self._replace_tokens(kind, rid, [] if deleted else content)
        return Stored(kind, rid, version, now, deleted, content)

    def _move_current(self, kind: str, rid: str, version: int, now: datetime, deleted: bool, *, first: bool) -> None:
        c = t.resource_current
        values = {"version_id": version, "last_updated": now, "deleted": deleted}
        if first:
            self.session.execute(insert(c).values(resource_type=kind, resource_id=rid, **values))
        else:
            self.session.execute(update(c).where(c.c.resource_type == kind, c.c.resource_id == rid).values(**values))

    def _replace_tokens(self, kind: str, rid: str, content: Json | list[Any]) -> None:
        s = t.search_token
        self.session.execute(delete(s).where(s.c.resource_type == kind, s.c.resource_id == rid))
        tokens = tokens_of(content) if isinstance(content, dict) else []
        if tokens:
            rows = [
                {"resource_type": kind, "resource_id": rid, "param": k.param, "system": k.system, "value": k.value}
                for k in tokens
            ]
            self.session.execute(insert(s), rows)

    # --- search -------------------------------------------------------------------------------------
    def search(
        self,
        resource_type: str,
        filters: Sequence[TokenFilter] = (),
        updated: Sequence[tuple[str, datetime]] = (),
        *,
        newest_first: bool = False,
        count: int = 20,
        offset: int = 0,
    ) -> tuple[list[Stored], int]:
        """Current, not deleted resources matching every filter; one page and the total."""
        c = t.resource_current
        where = [c.c.resource_type == resource_type, c.c.deleted.is_(False)]
        where += [self._token_match(resource_type, f) for f in filters]
        for op, bound in updated:
            where.append(
                {"ge": c.c.last_updated >= bound, "gt": c.c.last_updated > bound, "lt": c.c.last_updated < bound}[op]
            )
        total = self.session.execute(select(func.count()).select_from(c).where(*where)).scalar_one()
        order = [c.c.last_updated.desc() if newest_first else c.c.last_updated.asc(), c.c.resource_id]
        ids = select(c.c.resource_id, c.c.version_id).where(*where).order_by(*order).limit(count).offset(offset)
        page = self.session.execute(ids).all()
        found = [self.version(resource_type, rid, vid) for rid, vid in page]
        return [s for s in found if s is not None], int(total)

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
        r = t.message_request
        return self.session.execute(select(r.c.request_id).where(r.c.request_id == request_id)).first() is not None

    def message(self, bundle_id: str) -> MessageRecord | None:
        m = t.message
        row = self.session.execute(
            select(
                m.c.bundle_id, m.c.request_id, m.c.correlation_id, m.c.reason, m.c.referral_number, m.c.response
            ).where(m.c.bundle_id == bundle_id)
        ).one_or_none()
        if row is None:
            return None
        return MessageRecord(
            row.bundle_id,
            row.request_id,
            row.correlation_id,
            row.reason,
            row.referral_number,
            jsonio.loads(row.response),
        )

    def record_request(self, request_id: str, bundle_id: str, now: datetime) -> None:
        """Log a request id; a repeated one fails on the primary key (IntegrityError)."""
        self.session.execute(insert(t.message_request).values(request_id=request_id, bundle_id=bundle_id, received=now))
        self.session.flush()

    def claim_message(self, record: MessageRecord, now: datetime, original: bytes, fmt: str) -> None:
        """Log a message before processing it; a Bundle id already logged fails (IntegrityError).

        On PostgreSQL a second transaction inserting the same id waits here until the first one ends, so
        exactly one of two simultaneous deliveries goes on to process the message.
        """
        self.session.execute(
            insert(t.message).values(
                bundle_id=record.bundle_id,
                request_id=record.request_id,
                correlation_id=record.correlation_id,
                received=now,
                reason=record.reason,
                referral_number=record.referral_number,
                original=original,
                original_format=fmt,
                response="{}",
            )
        )
        self.session.flush()

    def finish_message(self, bundle_id: str, referral_number: int | None, response: Json) -> None:
        m = t.message
        text = jsonio.dumps(response).decode("utf-8")
        self.session.execute(
            update(m).where(m.c.bundle_id == bundle_id).values(referral_number=referral_number, response=text)
        )

    # --- referrals ----------------------------------------------------------------------------------
    def add_referral(self, record: ReferralRecord, now: datetime) -> int:
        """A new referral number; a sender identifier already used fails (IntegrityError)."""
        result = self.session.execute(
            insert(t.referral)
            .values(
                service_request_id=record.service_request_id,
                task_id=record.task_id,
                encounter_id=record.encounter_id,
                sender_identifier=record.sender_identifier,
                created=now,
            )
            .returning(t.referral.c.number)
        )
        number = int(result.scalar_one())
        self.session.flush()
        return number

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
