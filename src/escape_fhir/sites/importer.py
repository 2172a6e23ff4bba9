"""Reading a site directory from CSV or JSON, every bad row and column named, all or nothing.

The columns (README "The site directory" documents them for programme teams):

=================  ==============================================================================
``id``             the site's identifier, kept across imports (letters, digits, ``-`` and ``.``, up to 40)
``name``           the site's name as participants know it
``programme``      ``knee-hip`` or ``back``
``ods_code``       ODS code of the organisation that runs it
``organisation``   that organisation's name
``location_name``  where classes are held (default: the site's name)
``address``        address lines, separated by ``;``
``city``           town or city
``postcode``       UK postcode of the location (required, checked)
``latitude``       WGS84 decimal degrees, with ``longitude``: both or neither
``longitude``
``covers``         postcode districts (``LS6``) and sectors (``LS6 1``) it takes patients from, ``;``-separated
``sources``        referral sources it accepts: ``gp``, ``msk-triage``, ``physiotherapy``,
                   ``orthopaedic-surgeon``, ``self-referral``, ``other`` (``;``-separated)
``bars_endpoint``  BaRS: an https URL of its ``$process-message``, or ``system|value`` (a DoS service id)
``mesh_mailbox``   MESH mailbox id
``mesh_workflow_id`` the MESH workflow id agreed with the site (required with ``mesh_mailbox``)
``referral_email`` email address referrals are sent to
``referral_phone`` phone number referrals are made on
``methods``        optional order of preference of the four above (``bars;mesh;email;phone``)
``phone``          contact phone for participants
``email``          contact email for participants
``website``        web page of the site
``class_times``    ``mon,wed 10:00-11:00; fri 14:00-15:00``
``signposting``    options at discharge, ``;``-separated, each ``name`` or ``name: detail``
``active``         ``yes`` (default) or ``no``
=================  ==============================================================================

A site needs at least one referral method. JSON is a list of objects with the same keys; a list value may be
a JSON list instead of a ``;``-separated string, and numbers may be JSON numbers.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from escape_fhir.domain import ReferralSource
from escape_fhir.domain.referral import ODS_CODE
from escape_fhir.errors import FieldError, SiteImportError
from escape_fhir.sites.model import DAYS, METHODS, PROGRAMMES, ClassTime, Method, Signpost, Site
from escape_fhir.sites.postcode import parse_area, parse_postcode

COLUMNS = (
    "id",
    "name",
    "programme",
    "ods_code",
    "organisation",
    "location_name",
    "address",
    "city",
    "postcode",
    "latitude",
    "longitude",
    "covers",
    "sources",
    "bars_endpoint",
    "mesh_mailbox",
    "mesh_workflow_id",
    "referral_email",
    "referral_phone",
    "methods",
    "phone",
    "email",
    "website",
    "class_times",
    "signposting",
    "active",
)
REQUIRED = ("id", "name", "programme", "ods_code", "organisation", "postcode", "covers", "sources")
METHOD_COLUMNS = {"bars": "bars_endpoint", "mesh": "mesh_mailbox", "email": "referral_email", "phone": "referral_phone"}
SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-.]{0,39}$")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_CLASS = re.compile(r"^([a-z]{3}(?:\s*,\s*[a-z]{3})*)\s+(\S+)\s*-\s*(\S+)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{6,20}$")
_MAILBOX = re.compile(r"^[A-Za-z0-9]{1,20}$")
_WORKFLOW = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_SITES = 100_000


class _Row:
    """One input row: its values as text, and the errors found while reading it."""

    def __init__(self, label: str, values: Mapping[str, Any], errors: list[FieldError]) -> None:
        self.label, self.values, self.errors = label, values, errors

    def fail(self, column: str, message: str) -> None:
        self.errors.append(FieldError(f"{self.label}.{column}", message))

    def text(self, column: str) -> str:
        value = self.values.get(column)
        if value is None:
            return ""
        if isinstance(value, list):
            return ";".join(str(v) for v in value)
        return str(value).strip()

    def items(self, column: str) -> list[str]:
        value = self.values.get(column)
        parts = value if isinstance(value, list) else self.text(column).split(";")
        return [str(p).strip() for p in parts if str(p).strip()]

    def each(self, column: str, read: Callable[[str], str]) -> tuple[str, ...]:
        out = []
        for item in self.items(column):
            try:
                out.append(read(item))
            except ValueError as exc:
                self.fail(column, str(exc))
        return tuple(dict.fromkeys(out))


def _source(text: str) -> str:
    known = [s.value for s in ReferralSource]
    if text.lower() not in known:
        raise ValueError(f"{text!r} is not a referral source ({', '.join(known)})")
    return text.lower()


def _class_time(text: str) -> ClassTime:
    match = _CLASS.match(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a class time like 'mon,wed 10:00-11:00'")
    days = tuple(d.strip() for d in match.group(1).split(","))
    if bad := [d for d in days if d not in DAYS]:
        raise ValueError(f"{text!r}: {', '.join(bad)} is not a day ({', '.join(DAYS)})")
    start, end = match.group(2), match.group(3)
    if not (_TIME.match(start) and _TIME.match(end)) or start >= end:
        raise ValueError(f"{text!r}: times are HH:MM, the start before the end")
    return ClassTime(days, start, end)


def _coordinate(row: _Row, column: str, limit: float) -> float | None:
    text = row.text(column)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        row.fail(column, f"{text!r} is not a number of decimal degrees")
        return None
    if not -limit <= value <= limit or value != value:
        row.fail(column, f"{text} is outside -{limit:g} to {limit:g}")
        return None
    return value


def _method(row: _Row, kind: str) -> Method | None:
    column = METHOD_COLUMNS[kind]
    address = row.text(column)
    if not address:
        return None
    checks: dict[str, tuple[Callable[[str], bool], str]] = {
        "bars": (_bars_address, "an https URL or system|value (e.g. https://fhir.nhs.uk/Id/dos-service-id|123)"),
        "mesh": (lambda a: bool(_MAILBOX.match(a)), "a MESH mailbox id (letters and digits)"),
        "email": (lambda a: bool(_EMAIL.match(a)), "an email address"),
        "phone": (lambda a: bool(_PHONE.match(a)), "a phone number"),
    }
    check, wanted = checks[kind]
    if not check(address):
        row.fail(column, f"{address!r} is not {wanted}")
        return None
    if kind == "mesh":
        workflow = row.text("mesh_workflow_id")
        if not _WORKFLOW.match(workflow):
            row.fail("mesh_workflow_id", f"{workflow!r} is not a MESH workflow id (required with mesh_mailbox)")
            return None
        return Method(kind, address, workflow)
    return Method(kind, address)


def _bars_address(address: str) -> bool:
    if address.startswith(("https://", "http://")) and "|" not in address:
        return " " not in address
    system, bar, value = address.partition("|")
    return bool(bar and system.startswith(("https://", "http://", "urn:")) and value and " " not in address)


def _methods(row: _Row) -> tuple[Method, ...]:
    found = {kind: m for kind in METHODS if (m := _method(row, kind)) is not None}
    order = [m.lower() for m in row.items("methods")]
    if bad := [m for m in order if m not in METHODS]:
        row.fail("methods", f"{', '.join(bad)} is not a referral method ({', '.join(METHODS)})")
    if missing := [m for m in order if m in METHODS and not row.text(METHOD_COLUMNS[m])]:
        row.fail("methods", f"{', '.join(missing)} named but its column is empty")
    ordered = [found[m] for m in order if m in found] + [m for k, m in found.items() if k not in order]
    if not ordered and not any(row.text(c) for c in METHOD_COLUMNS.values()):
        row.fail(
            "bars_endpoint",
            "a site needs a referral method: bars_endpoint, mesh_mailbox, referral_email or referral_phone",
        )
    return tuple(ordered)


def _site(row: _Row) -> Site | None:
    before = len(row.errors)
    for column in REQUIRED:
        if not row.text(column):
            row.fail(column, "required")
    if len(row.errors) > before:
        return None
    site_id, programme, ods = row.text("id"), row.text("programme").lower(), row.text("ods_code").upper()
    if not SITE_ID.match(site_id):
        row.fail("id", f"{site_id[:60]!r} must be 1-40 letters, digits, '-' or '.' (it names FHIR resources)")
    if programme not in PROGRAMMES:
        row.fail("programme", f"{programme!r} is not a programme ({', '.join(PROGRAMMES)})")
    if not ODS_CODE.match(ods):
        row.fail("ods_code", f"{ods!r} is not an ODS code (1-9 letters and digits)")
    postcode = ""
    try:
        postcode = parse_postcode(row.text("postcode")).text
    except ValueError as exc:
        row.fail("postcode", str(exc))
    latitude, longitude = _coordinate(row, "latitude", 90), _coordinate(row, "longitude", 180)
    if (row.text("latitude") == "") != (row.text("longitude") == ""):
        row.fail("latitude", "latitude and longitude go together: give both or neither")
    coverage = row.each("covers", parse_area)
    sources = row.each("sources", _source)
    times = [t for t in (_checked(row, "class_times", _class_time, item) for item in row.items("class_times")) if t]
    methods = _methods(row)
    for column in ("email",):
        if row.text(column) and not _EMAIL.match(row.text(column)):
            row.fail(column, f"{row.text(column)!r} is not an email address")
    active = row.text("active").lower() or "yes"
    if active not in ("yes", "no", "true", "false"):
        row.fail("active", f"{active!r} is not yes or no")
    if len(row.errors) > before:
        return None
    return Site(
        id=site_id,
        name=row.text("name"),
        programme=programme,
        ods_code=ods,
        organisation=row.text("organisation"),
        postcode=postcode,
        coverage=coverage,
        sources=sources,
        methods=methods,
        location_name=row.text("location_name"),
        address=tuple(row.items("address")),
        city=row.text("city"),
        latitude=latitude,
        longitude=longitude,
        class_times=tuple(times),
        phone=row.text("phone"),
        email=row.text("email"),
        website=row.text("website"),
        signposting=tuple(_signposts(row.items("signposting"))),
        active=active in ("yes", "true"),
    )


def _checked(row: _Row, column: str, read: Callable[[str], ClassTime], item: str) -> ClassTime | None:
    try:
        return read(item)
    except ValueError as exc:
        row.fail(column, str(exc))
        return None


def _signposts(items: list[str]) -> list[Signpost]:
    out = []
    for item in items:
        name, colon, detail = item.partition(":")
        # A URL's "https:" is not the separator: only split where a name comes before it.
        if colon and not detail.startswith("//"):
            out.append(Signpost(name.strip(), detail.strip()))
        else:
            out.append(Signpost(item.strip()))
    return out


def _rows(data: bytes, kind: str) -> list[tuple[str, Mapping[str, Any]]]:
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's CSV may start with a byte-order mark
    except UnicodeDecodeError:
        raise SiteImportError([FieldError("file", "not UTF-8 text")]) from None
    if kind == "json":
        try:
            rows = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise SiteImportError([FieldError("file", f"not valid JSON: {exc}")]) from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SiteImportError([FieldError("file", "expected a JSON list of site objects")])
        return [(f"[{n}]", r) for n, r in enumerate(rows)]
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    if unknown := [h for h in header if h not in COLUMNS]:
        raise SiteImportError([FieldError("header", f"unknown column {', '.join(map(repr, unknown))}")])
    if missing := [c for c in REQUIRED if c not in header]:
        raise SiteImportError([FieldError("header", f"missing column {', '.join(missing)}")])
    reader.fieldnames = header
    # Row numbers as a spreadsheet shows them: the header is row 1.
    return [
        (f"row {reader.line_num}", r)
        for r in reader
        if any((v or "").strip() for v in r.values() if isinstance(v, str))
    ]


def read_sites(data: bytes, kind: str) -> list[Site]:
    """The sites of a CSV (``kind`` ``csv``) or JSON (``json``) directory; SiteImportError naming every bad
    row and column (nothing is imported from a file with one bad row)."""
    rows = _rows(data, kind)
    if len(rows) > MAX_SITES:
        raise SiteImportError([FieldError("file", f"more than {MAX_SITES} sites")])
    errors: list[FieldError] = []
    sites: list[Site] = []
    seen: dict[str, str] = {}
    for label, values in rows:
        site_id = str(values.get("id") or "").strip()
        row = _Row(f"{label} ({site_id})" if site_id else label, values, errors)
        if kind == "json" and (unknown := sorted(k for k in values if k not in COLUMNS)):
            row.fail(unknown[0], f"unknown key (columns: {', '.join(COLUMNS)})")
        if site_id and site_id in seen:
            row.fail("id", f"{site_id!r} is given twice (also {seen[site_id]})")
        seen.setdefault(site_id, label)
        if (site := _site(row)) is not None:
            sites.append(site)
    if errors:
        raise SiteImportError(errors)
    if not sites:
        raise SiteImportError([FieldError("file", "no sites in the file")])
    return sites


def kind_of(name: str, data: bytes) -> str:
    """``json`` for a ``.json`` file or content starting with ``[``, else ``csv``."""
    if name.lower().endswith(".json") or data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"[":
        return "json"
    return "csv"
