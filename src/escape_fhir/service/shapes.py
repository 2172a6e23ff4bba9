"""JSON types of the parts of a Bundle that are read before it is validated (FHIR json.html).

``$process-message`` reads the MessageHeader (event, reason, focus) and ``POST /`` reads each entry's
request before the validator runs, so those parts are checked for type first: a wrong type is a located 400,
never an AttributeError. Bundle size is bounded here too (limits.MAX_ENTRIES): a 4.5 MB message of 1.5
million empty entries is refused before anything walks it.
"""

from __future__ import annotations

from typing import Any

from escape_fhir.errors import Issue
from escape_fhir.service.limits import MAX_ENTRIES, MAX_SEARCH_VALUES, ascii_int, too_many
from escape_fhir.service.outcomes import OutcomeError, Problem

Json = dict[str, Any]
Shape = dict[str, type[Any]]

#: element -> its JSON type, for each thing read before validation (R4 cardinalities: a list for 0..*)
BUNDLE: Shape = {"id": str, "type": str, "entry": list, "meta": dict}
ENTRY: Shape = {"fullUrl": str, "resource": dict, "request": dict}
REQUEST: Shape = {"method": str, "url": str, "ifNoneExist": str, "ifMatch": str}
MESSAGE_HEADER: Shape = {
    "meta": dict,
    "eventCoding": dict,
    "eventUri": str,
    "reason": dict,
    "focus": list,
    "source": dict,
    "destination": list,
    "sender": dict,
    "response": dict,
}
RESPONSE: Shape = {"identifier": str, "code": str}
CODEABLE_CONCEPT: Shape = {"coding": list}
CODING: Shape = {"system": str, "code": str}
REFERENCE: Shape = {"reference": str}
_NAMES: dict[type[Any], str] = {dict: "an object", list: "an array", str: "a string"}


def _bad(text: str, where: str) -> OutcomeError:
    return OutcomeError(Problem.BAD_REQUEST, [Issue("error", "structure", text, where)])


def _check(obj: Json, table: Shape, where: str) -> None:
    for name, kind in table.items():
        value = obj.get(name)
        if value is not None and not isinstance(value, kind):
            raise _bad(f"{name} must be {_NAMES[kind]} (FHIR JSON), not {type(value).__name__}", f"{where}.{name}")


def _items(value: list[Any], where: str) -> None:
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _bad(f"each item must be an object, not {type(item).__name__}", f"{where}[{i}]")


def check_bundle(bundle: Json) -> None:
    """OutcomeError 400 (or 413 past MAX_ENTRIES entries) when a part read before validation has the wrong type."""
    _check(bundle, BUNDLE, "Bundle")
    entries = bundle.get("entry") or []
    if len(entries) > MAX_ENTRIES:
        raise too_many("Bundle entries", MAX_ENTRIES, "Bundle.entry", Problem.TOO_LARGE)
    _items(entries, "Bundle.entry")
    for i, entry in enumerate(entries):
        at = f"Bundle.entry[{i}]"
        _check(entry, ENTRY, at)
        if isinstance(entry.get("request"), dict):
            _request(entry["request"], f"{at}.request")
        resource = entry.get("resource")
        if isinstance(resource, dict) and resource.get("resourceType") == "MessageHeader":
            _message_header(resource, f"{at}.resource")


def _request(request: Json, where: str) -> None:
    _check(request, REQUEST, where)
    condition = request.get("ifNoneExist")
    if condition is not None and condition.count(",") >= MAX_SEARCH_VALUES:  # OR'd values, as in a search
        raise too_many("OR'd search values", MAX_SEARCH_VALUES, f"{where}.ifNoneExist")
    if_match = request.get("ifMatch")
    if if_match is not None and ascii_int(if_match.removeprefix("W/").strip('"')) is None:
        raise _bad(f'ifMatch {if_match[:40]!r} is not W/"<version>" (FHIR http.html#concurrency)', f"{where}.ifMatch")


def _message_header(header: Json, where: str) -> None:
    _check(header, MESSAGE_HEADER, where)
    for name, kind in (("eventCoding", CODING), ("reason", CODEABLE_CONCEPT), ("response", RESPONSE)):
        if isinstance(header.get(name), dict):
            _check(header[name], kind, f"{where}.{name}")
    coding = (header.get("reason") or {}).get("coding") or []
    _items(coding, f"{where}.reason.coding")
    for j, item in enumerate(coding):
        _check(item, CODING, f"{where}.reason.coding[{j}]")
    focus = header.get("focus") or []
    _items(focus, f"{where}.focus")
    for j, item in enumerate(focus):
        _check(item, REFERENCE, f"{where}.focus[{j}]")
