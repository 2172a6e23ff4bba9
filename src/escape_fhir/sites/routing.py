"""Routing a referral to its local ESCAPE-pain site: the rules, as small pure functions over the directory.

For a referral's pathway, patient postcode and source (README "Routing", docs/clinical-safety.md):

1. **Eligible sites** are active, run the referral's programme, cover the patient's postcode sector
   (``LS6 1``) or district (``LS6``), and accept the referral's source.
2. **Order, best first** (each tie broken by the next rule, so the order never depends on the file's order):
   a sector match beats a district match (the site named the smaller area, so it chose this patient's
   street); then the shorter distance, when it can be measured (below), a site with a position before one
   without; then the site's name; then its id.
3. **No eligible site**: the answer says so, and names the nearest sites of the programme that would take
   the patient another way, so the referrer can act: sites covering the postcode that do not take this
   source (with the sources they do take), then sites of the programme by distance where it can be
   measured, then sites covering another district of the same postcode area (``LS``). At most
   :data:`ALTERNATIVES` of them. None is ever chosen silently: an unrouted referral stays with whoever holds
   it.

Distance. The directory holds no postcode centroids: no table of them could be generated here from facts we
can cite without a network (the ONS Postcode Directory is a licensed download). So the patient's position is
*approximated* by the position of a site (any programme) that covers the patient's sector, else district;
distances are great-circle (haversine) kilometres from there to each site's position, and are shown as that
("about 2.1 km from Riverside Leisure Centre, the nearest known point to LS6"). Where no covering site has a
position, distance is not used and the answer says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from escape_fhir.sites.model import Site
from escape_fhir.sites.postcode import Postcode

ALTERNATIVES = 3
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
PROGRAMME_NAMES = {"knee-hip": "ESCAPE-pain for knees and hips", "back": "ESCAPE-pain for backs"}


@dataclass(frozen=True)
class Choice:
    site: Site
    #: ``sector`` or ``district`` (covers the postcode), ``distance`` or ``area`` (an alternative only).
    match: str
    distance_km: float | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Routing:
    pathway: str
    postcode: str
    source: str
    #: Sites that take the referral, best first.
    choices: tuple[Choice, ...]
    #: When no site takes it: the nearest sites of the programme the referrer could turn to.
    alternatives: tuple[Choice, ...]
    #: One sentence: the choice and why, or why none.
    summary: str
    #: How distances were measured, or why they were not.
    distance_basis: str

    @property
    def chosen(self) -> Choice | None:
        return self.choices[0] if self.choices else None


@dataclass(frozen=True)
class Local:
    """The sites of a programme for a postcode, whatever sources they accept (:func:`local_sites`)."""

    pathway: str
    postcode: str
    #: Sites of the programme covering the postcode, best first (the routing's order).
    sites: tuple[Choice, ...]
    #: When none covers it: the nearest sites of the programme.
    alternatives: tuple[Choice, ...]
    #: How distances were measured, or why they were not.
    distance_basis: str


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


class _Grid:
    """Sites with a position in cells of :data:`CELL` degrees, for the nearest few without measuring all:
    rings of cells around the point are searched outwards until the next ring cannot hold a nearer site."""

    CELL = 0.25

    def __init__(self, sites: Iterable[Site]) -> None:
        self.cells: dict[tuple[int, int], list[Site]] = defaultdict(list)
        for site in sites:
            if site.position:
                self.cells[self._cell(site.position)].append(site)
        rows = [r for r, _ in self.cells] or [0]
        cols = [c for _, c in self.cells] or [0]
        self.extent = max(max(rows) - min(rows), max(cols) - min(cols)) + 1

    def _width(self, latitude: float, ring: int) -> float:
        """The narrowest cell, in km, within ``ring`` cells of ``latitude`` (longitude cells narrow towards
        the poles; near a pole nothing is assumed)."""
        edge = abs(latitude) + (ring + 1) * self.CELL
        if edge >= 89:
            return 0.0
        return min(haversine_km((edge, 0.0), (edge, self.CELL)), haversine_km((0.0, 0.0), (self.CELL, 0.0)))

    def _cell(self, position: tuple[float, float]) -> tuple[int, int]:
        return math.floor(position[0] / self.CELL), math.floor(position[1] / self.CELL)

    def nearest(self, point: tuple[float, float], count: int, skip: set[str]) -> list[tuple[float, Site]]:
        """Up to ``count`` sites nearest ``point`` (kilometres, then name, then id), ``skip`` left out."""
        row, col = self._cell(point)
        found: list[tuple[float, str, str, Site]] = []
        for ring in range(self.extent + 1):
            if len(found) >= count and (ring - 1) * self._width(point[0], ring) > found[count - 1][0]:
                break  # every site not yet seen is at least (ring - 1) cell widths away
            for r in range(row - ring, row + ring + 1):
                for c in range(col - ring, col + ring + 1):
                    if max(abs(r - row), abs(c - col)) != ring:
                        continue
                    for site in self.cells.get((r, c), ()):
                        if site.id not in skip and site.position:
                            found.append((haversine_km(point, site.position), site.name, site.id, site))
            found.sort(key=lambda f: f[:3])
        return [(km, site) for km, _, _, site in found[:count]]


class Directory:
    """The active sites indexed by covered area (district or sector) and by programme, built once."""

    def __init__(self, sites: Iterable[Site]) -> None:
        self.sites = [s for s in sites if s.active]
        self.by_area: dict[str, list[Site]] = defaultdict(list)
        self.by_programme: dict[str, list[Site]] = defaultdict(list)
        #: (programme, postcode area letters) -> sites covering a district or sector of that area, by name.
        self.by_programme_area: dict[tuple[str, str], list[Site]] = defaultdict(list)
        self.by_id = {s.id: s for s in self.sites}
        self._grids: dict[str, _Grid] = {}
        for site in sorted(self.sites, key=lambda s: (s.name, s.id)):
            self.by_programme[site.programme].append(site)
            for area in site.coverage:
                self.by_area[area].append(site)
            for letters in dict.fromkeys(_area_of(a) for a in site.coverage):
                self.by_programme_area[(site.programme, letters)].append(site)

    def grid(self, programme: str) -> _Grid:
        """The spatial index of a programme's sites, built when first needed."""
        if programme not in self._grids:
            self._grids[programme] = _Grid(self.by_programme.get(programme, ()))
        return self._grids[programme]

    def covering(self, postcode: Postcode) -> list[tuple[Site, str]]:
        """Sites covering the postcode, each with ``sector`` or ``district`` (the smaller area if both)."""
        found = {s.id: (s, "sector") for s in self.by_area.get(postcode.sector, ())}
        for site in self.by_area.get(postcode.district, ()):
            found.setdefault(site.id, (site, "district"))
        return list(found.values())

    def patient_point(self, postcode: Postcode) -> tuple[tuple[float, float], str] | None:
        """The approximate position of the patient (module docstring): a covering site's position."""
        for area in (postcode.sector, postcode.district):
            placed = sorted((s for s in self.by_area.get(area, ()) if s.position), key=lambda s: (s.name, s.id))
            if placed:
                site = placed[0]
                assert site.position is not None
                return site.position, f"{site.location_name or site.name}, the nearest known point to {area}"
        return None


def _key(choice: Choice) -> tuple[int, int, float, str, str]:
    distance = choice.distance_km
    return (
        0 if choice.match == "sector" else 1,
        0 if distance is not None else 1,
        distance if distance is not None else 0.0,
        choice.site.name,
        choice.site.id,
    )


def _distance(site: Site, point: tuple[tuple[float, float], str] | None) -> float | None:
    return round(haversine_km(point[0], site.position), 1) if point and site.position else None


def _distance_reason(km: float | None, point: tuple[tuple[float, float], str] | None) -> list[str]:
    return [f"about {km:.1f} km from {point[1]}"] if km is not None and point else []


def route(directory: Directory, pathway: str, postcode: Postcode, source: str) -> Routing:
    """The sites that take this referral, best first, or why none does and who would (module docstring)."""
    point = directory.patient_point(postcode)
    programme = PROGRAMME_NAMES.get(pathway, pathway)
    basis = _basis(point, postcode)
    choices, declined = [], []
    for site, match in directory.covering(postcode):
        if site.programme != pathway:
            continue
        km = _distance(site, point)
        reasons = _covers(match, postcode, programme)
        if source in site.sources:
            reasons.append(f"accepts {source} referrals")
            choices.append(Choice(site, match, km, tuple(reasons + _distance_reason(km, point))))
        else:
            reasons.append(f"does not accept {source} referrals (accepts {', '.join(site.sources)})")
            declined.append(Choice(site, match, km, tuple(reasons + _distance_reason(km, point))))
    choices.sort(key=_key)
    if choices:
        best = choices[0]
        summary = f"{best.site.name} ({best.site.id}): " + "; ".join(best.reasons)
        if len(choices) > 1:
            summary += f"; chosen before {len(choices) - 1} other site(s) by " + _tie_break(best, choices[1])
        return Routing(pathway, postcode.text, source, tuple(choices), (), summary, basis)
    alternatives = _alternatives(directory, pathway, postcode, point, sorted(declined, key=_key))
    summary = f"no site covers {postcode.text} for {programme} and accepts {source} referrals"
    if alternatives:
        summary += "; nearest that would take the patient another way: " + ", ".join(
            f"{c.site.name} ({c.site.id})" for c in alternatives
        )
    else:
        summary += f"; no site of {programme} is known near {postcode.area}"
    return Routing(pathway, postcode.text, source, (), tuple(alternatives), summary, basis)


def local_sites(directory: Directory, pathway: str, postcode: Postcode) -> Local:
    """Every site of the programme covering the postcode, whichever referral sources it accepts, in the routing's
    order (a site finder: the person or referrer then sees how each site takes referrals); when none covers it,
    the nearest sites of the programme, found as :func:`route` finds its alternatives."""
    point = directory.patient_point(postcode)
    programme = PROGRAMME_NAMES.get(pathway, pathway)
    found = []
    for site, match in directory.covering(postcode):
        if site.programme == pathway:
            km = _distance(site, point)
            found.append(
                Choice(site, match, km, tuple(_covers(match, postcode, programme) + _distance_reason(km, point)))
            )
    found.sort(key=_key)
    alternatives = () if found else tuple(_alternatives(directory, pathway, postcode, point, []))
    return Local(pathway, postcode.text, tuple(found), alternatives, _basis(point, postcode))


def _basis(point: tuple[tuple[float, float], str] | None, postcode: Postcode) -> str:
    if point:
        return f"distance measured from {point[1]} (no postcode centroids are held)"
    return f"distance not used: no site covering {postcode.district} has a known position"


def _covers(match: str, postcode: Postcode, programme: str) -> list[str]:
    area = postcode.sector if match == "sector" else postcode.district
    return [f"covers {match} {area} ({postcode.text})", f"runs {programme}"]


def _tie_break(best: Choice, second: Choice) -> str:
    if best.match != second.match:
        return "sector match before district match"
    if best.distance_km != second.distance_km:
        return "distance"
    return "name" if best.site.name != second.site.name else "id"


def _alternatives(
    directory: Directory,
    pathway: str,
    postcode: Postcode,
    point: tuple[tuple[float, float], str] | None,
    declined: list[Choice],
) -> list[Choice]:
    out = declined[:ALTERNATIVES]
    taken = {c.site.id for c in out}
    if point is not None and len(out) < ALTERNATIVES:
        for exact, site in directory.grid(pathway).nearest(point[0], ALTERNATIVES - len(out), taken):
            km = round(exact, 1)
            reason = f"does not cover {postcode.district}; " + _distance_reason(km, point)[0]
            out.append(Choice(site, "distance", km, (reason,)))
            taken.add(site.id)
    letters = postcode.area
    for site in directory.by_programme_area.get((pathway, letters), ()):
        if len(out) >= ALTERNATIVES:
            break
        if site.id not in taken:
            covered = ", ".join(a for a in site.coverage if _area_of(a) == letters)
            out.append(Choice(site, "area", None, (f"covers {covered} in the same postcode area {letters}",)))
    return out


def _area_of(coverage: str) -> str:
    return "".join(ch for ch in coverage.split(" ")[0] if ch.isalpha()) if coverage else ""
