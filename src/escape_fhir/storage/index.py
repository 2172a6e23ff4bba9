"""What a resource is found by: the search values of its current version, by the declared parameters
(:mod:`escape_fhir.storage.search_params`).

Tokens are stored as ``system`` and ``value`` (``system`` empty when the element has none: a ``code``),
references as written in the stored resource (``Patient/123``), strings as written and folded (lower case,
accents removed: search.html#string matches "regardless of case and accents"), dates as the half-open range
their precision names (:func:`escape_fhir.fhir.dateranges.date_range`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from escape_fhir.fhir.dateranges import date_range
from escape_fhir.storage.search_params import (
    DATE,
    IDENTIFIER,
    REFERENCE,
    STRING,
    TOKEN,
    URI,
    SearchParam,
    params_of,
)

Json = dict[str, Any]
#: Longest value kept (the columns' width); longer values are not indexed (nothing real is that long).
MAX_VALUE = 255


@dataclass(frozen=True)
class Token:
    param: str
    system: str
    value: str


@dataclass(frozen=True)
class Text:
    param: str
    value: str
    norm: str


@dataclass(frozen=True)
class Range:
    param: str
    low: datetime
    high: datetime


@dataclass
class Entries:
    tokens: list[Token] = field(default_factory=list)
    strings: list[Text] = field(default_factory=list)
    dates: list[Range] = field(default_factory=list)


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a string (NFKD without combining marks, case-folded)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def values_at(resource: Json, path: str) -> list[Any]:
    """The values at a dotted path; ``name[x]`` takes whichever ``nameType`` element is present."""
    nodes: list[Any] = [resource]
    for step in path.split("."):
        found: list[Any] = []
        for node in nodes:
            if not isinstance(node, dict):
                continue
            if step.endswith("[x]"):
                stem = step[:-3]
                keys = [k for k in node if k.startswith(stem) and k[len(stem) : len(stem) + 1].isupper()]
                for key in keys:
                    found += _as_list(node[key])
            else:
                found += _as_list(node.get(step))
        nodes = found
    return nodes


def _tokens(value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield "", value
    elif isinstance(value, bool):
        yield "", "true" if value else "false"
    elif isinstance(value, dict):
        if isinstance(value.get("coding"), list) or isinstance(value.get("code"), str):
            codings = value["coding"] if isinstance(value.get("coding"), list) else [value]
            for coding in codings:
                if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                    system = coding.get("system")
                    yield (system if isinstance(system, str) else ""), coding["code"]
        elif isinstance(value.get("value"), str):  # Identifier, ContactPoint
            system = value.get("system")
            yield (system if isinstance(system, str) else ""), value["value"]


_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):  # HumanName (and any element whose parts are strings or lists of them)
        for part in _NAME_PARTS:
            for item in _as_list(value.get(part)):
                if isinstance(item, str):
                    yield item


def _dates(value: Any) -> Iterator[tuple[datetime, datetime]]:
    if isinstance(value, str):
        found = date_range(value)
        if found:
            yield found
    elif isinstance(value, dict) and ("start" in value or "end" in value):  # Period: open ends are unbounded
        start = date_range(value["start"]) if isinstance(value.get("start"), str) else None
        end = date_range(value["end"]) if isinstance(value.get("end"), str) else None
        yield (start[0] if start else datetime.min), (end[1] if end else datetime.max)


def _add(entries: Entries, param: SearchParam, resource: Json) -> None:
    if param.extract is not None:
        entries.tokens += [Token(param.name, s, v) for s, v in param.extract(resource)]
        return
    values = values_at(resource, param.path)
    if param.type in (TOKEN, URI):
        entries.tokens += [Token(param.name, s, v) for item in values for s, v in _tokens(item)]
    elif param.type == REFERENCE:
        for item in values:
            if isinstance(item, str) and param.canonical:  # url|version: the version kept as the system
                url, _, version = item.partition("|")
                entries.tokens.append(Token(param.name, version, url))
            elif isinstance(item, dict) and isinstance(item.get("reference"), str):
                entries.tokens.append(Token(param.name, "", item["reference"]))
    elif param.type == STRING:
        entries.strings += [Text(param.name, s, fold(s)) for item in values for s in _strings(item)]
    elif param.type == DATE:
        entries.dates += [Range(param.name, low, high) for item in values for low, high in _dates(item)]
    else:  # pragma: no cover - a composite always has an extractor
        raise AssertionError(f"{param.type} {param.name} needs an extractor")


def index_of(resource: Json) -> Entries:
    """The search values of one resource: its type's declared parameters, and ``identifier`` of any type."""
    declared = params_of(str(resource.get("resourceType", "")))
    entries = Entries()
    for param in declared.values():
        _add(entries, param, resource)
    if "identifier" not in declared:
        _add(entries, IDENTIFIER, resource)
    entries.tokens = [
        t for t in dict.fromkeys(entries.tokens) if len(t.value) <= MAX_VALUE and len(t.system) <= MAX_VALUE
    ]
    entries.strings = [
        s for s in dict.fromkeys(entries.strings) if len(s.value) <= MAX_VALUE and len(s.norm) <= MAX_VALUE
    ]
    entries.dates = list(dict.fromkeys(entries.dates))
    return entries


def tokens_of(resource: Json) -> list[Token]:
    """The token-like search values of one resource (kept for callers that need only these)."""
    return index_of(resource).tokens


__all__ = ["Entries", "Range", "Text", "Token", "fold", "index_of", "tokens_of", "values_at"]
