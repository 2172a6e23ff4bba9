"""Searches of the site directory: ``GET /HealthcareService``, ``/Location`` and ``/Endpoint`` (FHIR search.html).

Every parameter is answered from the indexed columns of :mod:`escape_fhir.sites.tables` (on SQLite and on
PostgreSQL alike), never by reading the resources: it narrows the ``site`` rows, and the matching sites'
current resources are then read by key. :data:`PARAMETERS` is the seam to the server's generic search: per
resource type, each parameter's FHIR type, its definition (R4's own, or our SearchParameter in profiles/)
and the function turning one value into a condition on the ``site`` table, so it can be registered in a
declarative table of search parameters as one entry per row.

Token values take ``system|code``, ``|code`` or ``code``, commas meaning OR; ``postcode`` takes any UK
postcode and finds the sites covering its sector or district; ``near`` on Location is R4's
``latitude|longitude|distance|units`` (units ``km``, the default, or ``m``; distance 10 km when not given),
nearest first. An unknown parameter or a malformed value is a 400 OperationOutcome.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import and_, false, func, or_, select

from escape_fhir.errors import Issue
from escape_fhir.fhir import codes
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.rest import _bundle
from escape_fhir.service.search import DEFAULT_COUNT, MAX_COUNT
from escape_fhir.sites import codes as sc
from escape_fhir.sites import tables as st
from escape_fhir.sites.model import METHODS, PROGRAMMES
from escape_fhir.sites.postcode import parse_area, parse_postcode
from escape_fhir.sites.resources import endpoint_id, service_id
from escape_fhir.sites.routing import EARTH_RADIUS_KM, haversine_km
from escape_fhir.sites.store import records
from escape_fhir.storage import Repository

Json = dict[str, Any]
R4 = "http://hl7.org/fhir/SearchParameter"
_s, _a, _src = st.site, st.site_area, st.site_source
DEFAULT_NEAR_KM = 10.0


@dataclass(frozen=True)
class SiteParam:
    type: str
    definition: str
    #: One value of the parameter -> a condition on the ``site`` table; ValueError for a malformed value.
    where: Callable[[str], Any]


def _bad(name: str, message: str) -> OutcomeError:
    return OutcomeError(Problem.BAD_REQUEST, [Issue("error", "invalid", f"{name}: {message}", name)])


def _code(value: str, system: str | None) -> str | None:
    """The code of a token value; None when it names another system (it matches nothing here)."""
    given, bar, code = value.partition("|")
    if bar and given and system and given != system:
        return None
    return code if bar else value


def _identifier(value: str) -> Any:
    code = _code(value, sc.ID_SITE)
    return false() if code is None else _s.c.site_id == code


def _programme(value: str) -> Any:
    code = _code(value, codes.CS_PROGRAMME)
    if code is None:
        return false()
    if code not in PROGRAMMES:
        raise ValueError(f"{code!r} is not a programme ({', '.join(PROGRAMMES)})")
    return _s.c.programme == code


def _postcode(value: str) -> Any:
    postcode = parse_postcode(value)
    return _s.c.site_id.in_(select(_a.c.site_id).where(_a.c.area.in_([postcode.sector, postcode.district])))


def _coverage(value: str) -> Any:
    return _s.c.site_id.in_(select(_a.c.site_id).where(_a.c.area == parse_area(value.rpartition("|")[2])))


def _source(value: str) -> Any:
    code = _code(value, codes.CS_REFERRAL_SOURCE)
    return false() if code is None else _s.c.site_id.in_(select(_src.c.site_id).where(_src.c.source == code))


def _organization(value: str) -> Any:
    code = value.rstrip("/").rsplit("/", 1)[-1].removeprefix("ods-")
    return _s.c.ods_code == code.upper()


def _active(value: str) -> Any:
    if value not in ("true", "false"):
        raise ValueError("true or false")
    return _s.c.active.is_(value == "true")


def _name(value: str) -> Any:
    return func.lower(_s.c.name).startswith(value.lower(), autoescape=True)


def _postal_code(value: str) -> Any:
    return func.replace(_s.c.postcode, " ", "").startswith(value.upper().replace(" ", ""), autoescape=True)


def _connection_type(value: str) -> Any:
    code = _code(value, sc.CS_METHOD)
    if code is None:
        return false()
    if code not in METHODS:
        raise ValueError(f"{code!r} is not a connection type of ours ({', '.join(METHODS)})")
    return _s.c.record.contains(f'"kind":"{code}"', autoescape=True)  # narrowed again from the record


_COMMON = {"identifier": SiteParam("token", f"{R4}/Resource-identifier", _identifier)}
PARAMETERS: dict[str, dict[str, SiteParam]] = {
    "HealthcareService": {
        **_COMMON,
        "program": SiteParam("token", f"{R4}/HealthcareService-program", _programme),
        "postcode": SiteParam("special", f"{sc.SP}/HealthcareService-postcode", _postcode),
        "coverage": SiteParam("token", f"{sc.SP}/HealthcareService-coverage", _coverage),
        "referral-source": SiteParam("token", f"{sc.SP}/HealthcareService-referral-source", _source),
        "organization": SiteParam("reference", f"{R4}/HealthcareService-organization", _organization),
        "active": SiteParam("token", f"{R4}/HealthcareService-active", _active),
        "name": SiteParam("string", f"{R4}/HealthcareService-name", _name),
    },
    "Location": {
        **_COMMON,
        "address-postalcode": SiteParam("string", f"{R4}/Location-address-postalcode", _postal_code),
        "organization": SiteParam("reference", f"{R4}/Location-organization", _organization),
        "name": SiteParam("string", f"{R4}/Location-name", _name),
        "near": SiteParam("special", f"{R4}/Location-near", lambda _v: None),  # handled apart (distance)
    },
    "Endpoint": {
        **_COMMON,
        "connection-type": SiteParam("token", f"{R4}/Endpoint-connection-type", _connection_type),
        "organization": SiteParam("reference", f"{R4}/Endpoint-organization", _organization),
    },
}
_PAGING = ("_count", "_offset", "_format")


@dataclass(frozen=True)
class Near:
    latitude: float
    longitude: float
    km: float

    def box(self) -> Any:
        """The latitude/longitude box around the circle: the indexed pre-filter (haversine decides)."""
        dlat = math.degrees(self.km / EARTH_RADIUS_KM)
        coslat = max(math.cos(math.radians(self.latitude)), 1e-6)
        dlon = min(180.0, math.degrees(self.km / (EARTH_RADIUS_KM * coslat)))
        return and_(
            _s.c.latitude.between(self.latitude - dlat, self.latitude + dlat),
            _s.c.longitude.between(self.longitude - dlon, self.longitude + dlon),
        )


def parse_near(value: str) -> Near:
    parts = value.split("|")
    try:
        latitude, longitude = float(parts[0]), float(parts[1])
        distance = float(parts[2]) if len(parts) > 2 and parts[2] else DEFAULT_NEAR_KM
    except (ValueError, IndexError):
        raise ValueError("latitude|longitude|distance|units, in decimal degrees") from None
    units = parts[3] if len(parts) > 3 and parts[3] else "km"
    if units not in ("km", "m") or not (-90 <= latitude <= 90 and -180 <= longitude <= 180) or not distance > 0:
        raise ValueError("latitude -90..90, longitude -180..180, a positive distance in km or m")
    return Near(latitude, longitude, distance / 1000 if units == "m" else distance)


def _number(name: str, value: str, highest: int) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise _bad(name, "a whole number")
    return min(int(value), highest)


def search_sites(repo: Repository, resource_type: str, params: Sequence[tuple[str, str]], base: str) -> Json:
    """The searchset Bundle of a directory search (module docstring)."""
    known = PARAMETERS[resource_type]
    where: list[Any] = []
    near: Near | None = None
    count, offset = DEFAULT_COUNT, 0
    for name, value in params:
        if name == "_count":
            count = _number(name, value, MAX_COUNT)
        elif name == "_offset":
            offset = _number(name, value, 10**9)
        elif name == "_format" or not value:
            continue  # an empty value is no criterion (search.html#errors)
        elif "\x00" in value or len(value) > 1000:
            raise _bad(name, "a value holds no NUL character and at most 1000 characters")
        elif name not in known:
            supported = ", ".join(sorted({*known, "_count", "_offset"}))
            raise _bad(name, f"unknown search parameter for {resource_type} (supported: {supported})")
        else:
            try:
                if name == "near":
                    near = parse_near(value)
                    where.append(near.box())
                else:
                    where.append(or_(*(known[name].where(v) for v in value.split(",") if v)))
            except ValueError as exc:
                raise _bad(name, str(exc)) from None
    rows = repo.session.execute(
        select(_s.c.site_id, _s.c.latitude, _s.c.longitude).where(*where).order_by(_s.c.name, _s.c.site_id)
    ).all()
    ids = [r.site_id for r in rows]
    if near is not None:
        here = (near.latitude, near.longitude)
        measured = [(haversine_km(here, (r.latitude, r.longitude)), r.site_id) for r in rows]
        ids = [site_id for km, site_id in sorted(measured) if km <= near.km]
    keys = _keys(repo, resource_type, params, ids)
    page = keys[offset : offset + count]
    found = repo.currents(page)
    entries = [
        {"fullUrl": f"{base}/{t}/{i}", "resource": found[(t, i)].content, "search": {"mode": "match"}}
        for t, i in page
        if (t, i) in found and not found[(t, i)].deleted
    ]
    used = [(k, v) for k, v in params if k not in _PAGING]
    self_link = f"{base}/{resource_type}?{urlencode([*used, ('_count', str(count)), ('_offset', str(offset))])}"
    links = [("self", self_link)]
    if offset + count < len(keys):
        links.append(
            (
                "next",
                f"{base}/{resource_type}?{urlencode([*used, ('_count', str(count)), ('_offset', str(offset + count))])}",
            )
        )
    return _bundle("searchset", entries, len(keys), links)


def _keys(
    repo: Repository, resource_type: str, params: Sequence[tuple[str, str]], ids: list[str]
) -> list[tuple[str, str]]:
    if resource_type != "Endpoint":
        return [(resource_type, service_id(i)) for i in ids]
    wanted = {_code(v, sc.CS_METHOD) for k, value in params if k == "connection-type" for v in value.split(",") if v}
    sites = records(repo, ids)
    return [
        ("Endpoint", endpoint_id(i, m.kind))
        for i in ids
        if i in sites
        for m in sites[i].methods
        if not wanted or m.kind in wanted
    ]


def capability_entries() -> dict[str, list[Json]]:
    """``searchParam`` of each directory resource type, for ``/metadata``."""
    return {
        kind: [{"name": name, "definition": p.definition, "type": p.type} for name, p in sorted(params.items())]
        + [{"name": "_count", "type": "number"}, {"name": "_offset", "type": "number"}]
        for kind, params in PARAMETERS.items()
    }


def _searchable(entry: Json) -> None:
    if {"code": "search-type"} not in entry["interaction"]:
        entry["interaction"] = [*entry["interaction"], {"code": "search-type"}]


def add_to_capability(rest: Json) -> None:
    """Declare the directory's searches (each parameter with its definition) and ``$route`` in ``/metadata``'s
    ``rest`` entry, beside what the generic routes declare for these types."""
    params = capability_entries()
    for entry in rest["resource"]:
        if entry["type"] in params:
            _searchable(entry)
            entry["searchParam"] = params.pop(entry["type"])  # these routes answer the type's searches
        if entry["type"] == "CommunicationRequest":  # the hub's "to contact" list (escape_fhir.sites.hub)
            _searchable(entry)
            entry["documentation"] = "The hub's to-contact list: referrals for sites taking them by email or phone"
            entry["searchParam"] = [
                {"name": "status", "definition": f"{R4}/CommunicationRequest-status", "type": "token"}
            ]
    rest["operation"] = [
        *rest["operation"],
        {"name": "route", "definition": f"{codes.BASE}/OperationDefinition/route"},
    ]
