"""The site directory in the database, over a repository (the caller's transaction).

An import writes every site in one transaction (all or nothing). A site is matched by its id: a new one is
created, a changed one gets new versions of its resources (``GET /HealthcareService/site-<id>/_history``
shows each import that changed it), an unchanged one is left as it is. Sites that are not in the file are
left as they are too (a file may cover one region): set ``active`` to ``no`` to retire a site.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update

from escape_fhir.sites import tables as st
from escape_fhir.sites.model import Site
from escape_fhir.sites.postcode import Postcode
from escape_fhir.sites.resources import site_resources
from escape_fhir.sites.routing import ALTERNATIVES, Directory, haversine_km
from escape_fhir.storage import Repository

Json = dict[str, Any]


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _row(site: Site, now: datetime) -> dict[str, Any]:
    return {
        "site_id": site.id,
        "programme": site.programme,
        "name": site.name[:255],
        "ods_code": site.ods_code,
        "postcode": site.postcode,
        "latitude": site.latitude,
        "longitude": site.longitude,
        "active": site.active,
        "record": orjson.dumps(site.as_record()).decode("utf-8"),
        "updated": now,
    }


def _same(stored: Json, wanted: Json) -> bool:
    return {k: v for k, v in stored.items() if k != "meta"} == wanted


def import_sites(repo: Repository, sites: Sequence[Site], now: datetime) -> ImportReport:
    """Write the sites (module docstring); the caller's transaction commits all of them or none."""
    report = ImportReport()
    held = records(repo, [s.id for s in sites])
    resources: dict[tuple[str, str], Json] = {}
    for site in sites:
        for resource in site_resources(site):
            resources[(resource["resourceType"], resource["id"])] = resource  # an Organization once
    current = repo.currents(list(resources), lock=True)
    changed = [r for key, r in resources.items() if key not in current or not _same(current[key].content, r)]
    if changed:
        repo.save_all(changed, now)
    session = repo.session
    for site in sites:
        if site.id not in held:
            session.execute(insert(st.site).values(**_row(site, now)))
            report.created.append(site.id)
        elif held[site.id] != site:
            session.execute(update(st.site).where(st.site.c.site_id == site.id).values(**_row(site, now)))
            report.updated.append(site.id)
        else:
            report.unchanged.append(site.id)
            continue
        session.execute(delete(st.site_area).where(st.site_area.c.site_id == site.id))
        session.execute(delete(st.site_source).where(st.site_source.c.site_id == site.id))
        if site.coverage:
            session.execute(insert(st.site_area), [{"site_id": site.id, "area": a} for a in site.coverage])
        if site.sources:
            session.execute(insert(st.site_source), [{"site_id": site.id, "source": s} for s in site.sources])
    return report


def _sites(rows: Iterable[Any]) -> list[Site]:
    return [Site.from_record(orjson.loads(row.record)) for row in rows]


def records(repo: Repository, site_ids: Sequence[str]) -> dict[str, Site]:
    """The sites held among ``site_ids``."""
    found: dict[str, Site] = {}
    ids = list(dict.fromkeys(site_ids))
    for start in range(0, len(ids), 500):
        rows = repo.session.execute(select(st.site.c.record).where(st.site.c.site_id.in_(ids[start : start + 500])))
        found.update({s.id: s for s in _sites(rows)})
    return found


def site(repo: Repository, site_id: str) -> Site | None:
    return records(repo, [site_id]).get(site_id)


def all_sites(repo: Repository, programme: str | None = None) -> list[Site]:
    query = select(st.site.c.record).order_by(st.site.c.name, st.site.c.site_id)
    if programme:
        query = query.where(st.site.c.programme == programme)
    return _sites(repo.session.execute(query))


def covering_ids(repo: Repository, postcode: Postcode) -> list[str]:
    """Ids of the sites covering the postcode's sector or district (the indexed ``site_area.area``)."""
    query = select(st.site_area.c.site_id).where(st.site_area.c.area.in_([postcode.sector, postcode.district]))
    return list(dict.fromkeys(repo.session.execute(query).scalars()))


def directory_for(repo: Repository, postcode: Postcode, programme: str) -> Directory:
    """The part of the directory that routing this postcode may need, read from the indexed columns (never
    the whole directory): the sites covering it (any programme: they also place the patient); and, only when
    none of them runs the programme, the programme's sites covering the same postcode area and its nearest
    sites with a position (for the alternatives)."""
    near = records(repo, covering_ids(repo, postcode))
    if any(s.programme == programme and s.active for s in near.values()):
        return Directory(near.values())
    wanted = _area_ids(repo, programme, postcode.area)
    point = Directory(near.values()).patient_point(postcode)
    if point is not None:
        wanted += _nearest_ids(repo, programme, point[0], ALTERNATIVES + len(near))
    near.update(records(repo, [i for i in wanted if i not in near]))
    return Directory(near.values())


def _area_ids(repo: Repository, programme: str, letters: str) -> list[str]:
    """Sites of the programme covering a district or sector of the postcode area ``letters`` (``LS``)."""
    a, s = st.site_area, st.site
    query = (
        select(a.c.site_id, a.c.area)
        .join(s, s.c.site_id == a.c.site_id)
        .where(a.c.area.startswith(letters, autoescape=True), s.c.programme == programme, s.c.active.is_(True))
    )
    return list(dict.fromkeys(i for i, area in repo.session.execute(query) if _letters(area) == letters))


def _letters(area: str) -> str:
    return area[: len(area) - len(area.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))]


def _nearest_ids(repo: Repository, programme: str, point: tuple[float, float], count: int) -> list[str]:
    """At least ``count`` of the programme's placed sites nearest ``point`` when there are that many: boxes
    of growing size on the indexed position, until ``count`` lie within the circle the box holds."""
    s = st.site
    placed = [s.c.programme == programme, s.c.active.is_(True), s.c.latitude.is_not(None)]
    for km in (20.0, 80.0, 320.0):
        dlat = km / 111.0
        dlon = min(180.0, km / (111.0 * max(math.cos(math.radians(point[0])), 0.01)))
        box = [
            s.c.latitude.between(point[0] - dlat, point[0] + dlat),
            s.c.longitude.between(point[1] - dlon, point[1] + dlon),
        ]
        rows = repo.session.execute(select(s.c.site_id, s.c.latitude, s.c.longitude).where(*placed, *box)).all()
        inside = [r.site_id for r in rows if haversine_km(point, (r.latitude, r.longitude)) <= km]
        if len(inside) >= count:
            return [r.site_id for r in rows]
    return list(repo.session.execute(select(s.c.site_id).where(*placed)).scalars())
