"""Search parameters of ``GET /ServiceRequest`` and ``GET /Task`` (FHIR search.html, R4 parameter registry).

Token parameters take ``system|value``, ``|value`` or ``value``, commas meaning OR (search.html#token);
reference parameters take ``Type/id``, an absolute URL or a bare id; ``_lastUpdated`` takes the prefixes
``eq``, ``gt``, ``ge``, ``lt``, ``le`` over a date or instant, its precision giving the range
(search.html#date). An unknown parameter is refused with 400 rather than silently ignored, so that a typo
never returns every referral (search.html#errors allows either).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from escape_fhir.errors import Issue
from escape_fhir.service.limits import MAX_SEARCH_VALUES, ascii_int, too_many
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.storage import TokenFilter

MAX_COUNT = 100
DEFAULT_COUNT = 20
COMMON = ("_lastUpdated", "_count", "_sort", "_offset", "_format", "identifier")
#: Search parameter -> kind, per searchable type. Parameters of kind "reference" store ``Type/id``.
PARAMETERS: dict[str, dict[str, str]] = {
    "ServiceRequest": {
        "patient": "reference",
        "patient.identifier": "chain",
        "status": "token",
        "performer": "reference",
        "identifier": "token",
    },
    "Task": {
        "status": "token",
        "owner": "reference",
        "focus": "reference",
        "patient": "reference",
        "identifier": "token",
    },
}
REFERENCE_TYPES = {
    "patient": ("Patient",),
    "focus": ("ServiceRequest",),
    "owner": ("Organization", "Practitioner", "PractitionerRole", "HealthcareService"),
    "performer": ("HealthcareService", "Organization", "Practitioner", "PractitionerRole"),
}
_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$",
    re.ASCII,  # \d would also take other scripts' digits
)


@dataclass
class Query:
    filters: list[TokenFilter] = field(default_factory=list)
    patient_identifiers: tuple[tuple[str | None, str], ...] = ()
    updated: list[tuple[str, datetime]] = field(default_factory=list)
    newest_first: bool = False
    count: int = DEFAULT_COUNT
    offset: int = 0
    used: list[tuple[str, str]] = field(default_factory=list)  # for the self and next links


def _bad(message: str, name: str) -> OutcomeError:
    return OutcomeError(Problem.BAD_REQUEST, [Issue("error", "invalid", message, name)])


def token_values(text: str) -> tuple[tuple[str | None, str], ...]:
    out: list[tuple[str | None, str]] = []
    for part in text.split(","):
        system, bar, value = part.partition("|")
        out.append((system, value) if bar else (None, part))
    return tuple(v for v in out if v[1])


def reference_values(name: str, text: str) -> tuple[tuple[str | None, str], ...]:
    out: list[tuple[str | None, str]] = []
    for part in filter(None, text.split(",")):
        pieces = part.rstrip("/").split("/")
        if len(pieces) >= 2:
            out.append((None, f"{pieces[-2]}/{pieces[-1]}"))
        else:
            out += [(None, f"{kind}/{part}") for kind in REFERENCE_TYPES.get(name, ())]
    return tuple(out)


def _instant_range(text: str) -> tuple[datetime, datetime]:
    match = _DATE.match(text)
    if not match:
        raise _bad(f"_lastUpdated {text!r} is not a FHIR date or instant", "_lastUpdated")
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        start = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0))
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            start -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    except (ValueError, OverflowError):
        raise _bad(f"_lastUpdated {text!r} is not a real date (years 0001-9999)", "_lastUpdated") from None
    return start, _range_end(start, month is None, day is None, hour is None, second is None)


def _range_end(start: datetime, by_year: bool, by_month: bool, by_day: bool, by_minute: bool) -> datetime:
    """The end of the range a date of that precision names; past year 9999 (the end of Python's and the
    databases' calendar) the range is open-ended, so ``le9999`` and ``eq9999-12-31`` still work."""
    try:
        if by_year:
            return start.replace(year=start.year + 1)
        if by_month:
            return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        step = timedelta(days=1) if by_day else timedelta(minutes=1) if by_minute else timedelta(seconds=1)
        return start + step
    except (ValueError, OverflowError):
        return datetime.max


def _last_updated(text: str) -> list[tuple[str, datetime]]:
    prefix = text[:2] if text[:2].isalpha() else "eq"
    start, end = _instant_range(text[2:] if text[:2].isalpha() else text)
    bounds = {
        "eq": [("ge", start), ("lt", end)],
        "ge": [("ge", start)],
        "gt": [("ge", end)],
        "lt": [("lt", start)],
        "le": [("lt", end)],
    }
    if prefix not in bounds:
        raise _bad(f"_lastUpdated prefix {prefix!r} is not supported (eq, gt, ge, lt, le)", "_lastUpdated")
    return [(op, moment.replace(tzinfo=None) if moment.tzinfo else moment) for op, moment in bounds[prefix]]


def _number(name: str, text: str, highest: int) -> int:
    value = ascii_int(text)
    if value is None:
        raise _bad(f"{name} must be a whole number (ASCII digits, at most 18)", name)
    return min(value, highest)


def _check_values(query: Query, name: str) -> None:
    """OR'd values are bounded: each becomes a condition of one SQL statement (SQLite refuses expression
    trees deeper than 1000, and every value costs the database a comparison)."""
    count = sum(len(f.values) for f in query.filters) + len(query.patient_identifiers)
    if count > MAX_SEARCH_VALUES:
        raise too_many("OR'd search values", MAX_SEARCH_VALUES, name)


def parse_query(resource_type: str, params: Sequence[tuple[str, str]]) -> Query:
    """The query of a search; OutcomeError 400 for an unknown parameter or a malformed value."""
    known = PARAMETERS[resource_type]
    query = Query()
    for name, value in params:
        if name == "_format":
            continue
        if "\x00" in value:
            raise _bad(f"{name} must not contain a NUL character", name)
        query.used.append((name, value))
        if name == "_count":
            query.count = _number(name, value, MAX_COUNT)
        elif name == "_offset":
            query.offset = _number(name, value, 10**9)
        elif name == "_sort":
            if value not in ("_lastUpdated", "-_lastUpdated"):
                raise _bad("_sort supports _lastUpdated and -_lastUpdated", name)
            query.newest_first = value.startswith("-")
        elif name == "_lastUpdated":
            query.updated += _last_updated(value)
        elif known.get(name) == "token":
            query.filters.append(TokenFilter(name, token_values(value)))
        elif known.get(name) == "reference":
            query.filters.append(TokenFilter(name, reference_values(name, value)))
        elif known.get(name) == "chain":
            query.patient_identifiers += token_values(value)
        else:
            supported = ", ".join(sorted({*known, *COMMON} - {"_format"}))
            raise _bad(f"unknown search parameter {name!r} for {resource_type} (supported: {supported})", name)
        _check_values(query, name)
    return query
