"""Parsing a FHIR R4 search (search.html): parameters of the declared table
(:mod:`escape_fhir.storage.search_params`), their modifiers and prefixes, chains, and the result parameters.

* token ``system|code``, ``|code`` (no system), ``system|`` (any code of the system), ``code``; ``:not``,
  ``:missing``. Commas OR values; repeated parameters AND (search.html#combining).
* reference ``Type/id``, an absolute URL or a bare id (of each type the parameter may point to); ``:Type``;
  a chain ``param.name`` or ``param:Type.name`` on any parameter of the target type (search.html#chaining).
* string: starts with, ignoring case and accents; ``:exact``; ``:contains``.
* date: prefixes ``eq ne gt lt ge le sa eb`` over the range the value's precision names.
* composite ``code-value-concept=system|code$system|code``.
* ``_id``, ``_lastUpdated``; ``_count``, ``_offset``, ``_sort`` (``_id``, ``_lastUpdated`` and the declared
  parameters, ``-`` descending, commas for more keys), ``_summary`` (``count``, ``true``, ``text``, ``data``,
  ``false``), ``_elements``, ``_total`` (``none``, ``estimate``, ``accurate``), ``_include`` and
  ``_revinclude`` (``Type:param[:Target]``, ``:iterate``).

An unknown parameter follows ``Prefer: handling`` (search.html#errors): ``strict`` (the default here, so a
typo never returns every referral) refuses it with 400; ``lenient`` ignores it, leaves it out of the self
link and names it in an OperationOutcome entry. A malformed value or an unknown modifier is 400 either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from escape_fhir.errors import Issue
from escape_fhir.fhir.dateranges import date_range
from escape_fhir.service.limits import MAX_SEARCH_VALUES, ascii_int, too_many
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.storage.index import fold
from escape_fhir.storage.search_params import (
    BY_TYPE,
    COMPOSITE,
    DATE,
    REFERENCE,
    STRING,
    TOKEN,
    URI,
    SearchParam,
    params_of,
)
from escape_fhir.storage.search_sql import (
    Chain,
    CompositeMatch,
    Condition,
    DateMatch,
    IdMatch,
    Missing,
    SortKey,
    StringMatch,
    TokenMatch,
    UpdatedMatch,
)

MAX_COUNT = 100
DEFAULT_COUNT = 20
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
SUMMARIES = ("true", "text", "data", "count", "false")
TOTALS = ("none", "estimate", "accurate")
#: Result parameters every searchable type takes (besides ``_id`` and ``_lastUpdated``, which are matched).
RESULT_PARAMS = ("_count", "_offset", "_sort", "_summary", "_elements", "_total", "_include", "_revinclude")
#: ``_totalMethod`` (Aidbox's name for ``_total``: ``count``, ``estimate``, ``none``), which fhirpy's
#: ``count()`` sends with ``_count=0``; taken as ``_total`` so that the Python client's count works.
_TOTAL_METHODS = {"count": "accurate", "estimate": "estimate", "none": "none"}
#: Ignored: how the answer is written, not what it holds.
_FORMATTING = ("_format", "_pretty")
#: Searchable types -> parameter name -> FHIR search type (the declared table, plus ``_id``, ``_lastUpdated``).
PARAMETERS: dict[str, dict[str, str]] = {
    kind: {"_id": TOKEN, "_lastUpdated": DATE, **{n: p.type for n, p in params.items()}}
    for kind, params in BY_TYPE.items()
}
_MODIFIERS = {
    TOKEN: ("not", "missing"),
    REFERENCE: ("missing",),
    STRING: ("exact", "contains", "missing"),
    DATE: ("missing",),
    URI: ("missing",),
    COMPOSITE: (),
}


@dataclass(frozen=True)
class Include:
    """``_include`` / ``_revinclude`` ``source:param[:target]``; ``iterate`` follows included resources too."""

    source: str
    param: str
    target: str | None
    iterate: bool
    reverse: bool


@dataclass
class Query:
    resource_type: str = ""
    conditions: list[Condition] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    summary: str | None = None
    elements: tuple[str, ...] | None = None
    total: str = "accurate"
    includes: list[Include] = field(default_factory=list)
    used: list[tuple[str, str]] = field(default_factory=list)  # for the self and next links
    ignored: list[str] = field(default_factory=list)  # unknown parameters, with Prefer: handling=lenient
    values: int = 0  # OR'd values so far (bounded)


def _bad(message: str, name: str) -> OutcomeError:
    return OutcomeError(Problem.BAD_REQUEST, [Issue("error", "invalid", message, name)])


def _split(text: str) -> list[str]:
    """Comma-separated values; ``\\,`` is a literal comma (search.html#escaping)."""
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += char if char in ",$|\\" else "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def token_values(text: str) -> tuple[tuple[str | None, str], ...]:
    """``system|code`` pairs of a token parameter (the system None when not given); empty codes left out."""
    out: list[tuple[str | None, str]] = []
    for part in _split(text):
        system, bar, value = part.partition("|")
        out.append((system, value) if bar else (None, part))
    return tuple(v for v in out if v[1])


def _tokens(text: str, name: str) -> tuple[tuple[str | None, str | None], ...]:
    out: list[tuple[str | None, str | None]] = []
    for part in _split(text):
        system, bar, value = part.partition("|")
        if not bar:
            out.append((None, part))
        elif value or system:
            out.append((system, value or None))
    if not out or any(v == (None, "") for v in out):
        raise _bad(f"{name} needs a value (system|code, |code, system| or code)", name)
    return tuple(out)


def reference_values(param: SearchParam, text: str, only: str | None = None) -> tuple[tuple[str | None, str], ...]:
    """``Type/id`` forms of a reference parameter's values; for a canonical, (version or None, URL)."""
    out: list[tuple[str | None, str]] = []
    for part in filter(None, _split(text)):
        if param.canonical:
            url, bar, version = part.partition("|")
            out.append((version if bar else None, url))
            continue
        pieces = part.rstrip("/").split("/")
        if len(pieces) >= 2:
            if "_history" in pieces[-2:]:
                pieces = pieces[:-2]
            out.append((None, f"{pieces[-2]}/{pieces[-1]}"))
        else:
            out += [(None, f"{kind}/{part}") for kind in (only,) if kind] or [
                (None, f"{kind}/{part}") for kind in param.targets
            ]
    return tuple(out)


def _dates(text: str, name: str) -> tuple[tuple[str, datetime, datetime], ...]:
    out = []
    for part in _split(text):
        prefix, rest = (part[:2], part[2:]) if part[:2].isalpha() else ("eq", part)
        if prefix not in PREFIXES:
            raise _bad(f"{name} prefix {prefix!r} is not one of {', '.join(PREFIXES)}", name)
        found = date_range(rest)
        if found is None:
            raise _bad(f"{name} {part!r} is not a FHIR date, dateTime or instant (years 0001-9999)", name)
        out.append((prefix, found[0], found[1]))
    return tuple(out)


def _number(name: str, text: str, highest: int) -> int:
    value = ascii_int(text)
    if value is None:
        raise _bad(f"{name} must be a whole number (ASCII digits, at most 18)", name)
    return min(value, highest)


class _Parser:
    """Builds one :class:`Query` parameter by parameter: the OR'd values counted across all of them, and an
    unknown name refused or set aside by one rule (``strict``)."""

    def __init__(self, resource_type: str, strict: bool) -> None:
        self.query = Query(resource_type)
        self.strict = strict

    def unknown(self, name: str, text: str) -> None:
        if self.strict:
            raise _bad(text, name)
        self.query.ignored.append(name)

    def count_values(self, number: int, name: str) -> None:
        """OR'd values are bounded: each becomes a condition of one SQL statement (SQLite refuses expression
        trees deeper than 1000, and every value costs the database a comparison)."""
        self.query.values += number
        if self.query.values > MAX_SEARCH_VALUES:
            raise too_many("OR'd search values", MAX_SEARCH_VALUES, name)

    def condition(self, resource_type: str, name: str, modifier: str, value: str) -> Condition | None:
        """The condition of one parameter of ``resource_type``; None when it is unknown (lenient)."""
        if name == "_id":
            if modifier not in ("", "not"):
                raise _bad(f"_id takes no :{modifier}", name)
            ids = tuple(v for v in _split(value) if v)
            self.count_values(len(ids), name)
            return IdMatch(ids, negate=modifier == "not")
        if name == "_lastUpdated":
            if modifier:
                raise _bad(f"_lastUpdated takes no :{modifier}", name)
            dates = _dates(value, name)
            self.count_values(len(dates), name)
            return UpdatedMatch(dates)
        param = params_of(resource_type).get(name)
        if param is None:
            supported = ", ".join(sorted(PARAMETERS.get(resource_type, {})))
            self.unknown(name, f"unknown search parameter {name!r} for {resource_type} (supported: {supported})")
            return None
        if param.type == REFERENCE and modifier and modifier[0].isupper():
            if modifier not in param.targets:
                raise _bad(f"{name} does not refer to {modifier} (only {', '.join(param.targets)})", name)
        elif modifier and modifier not in _MODIFIERS[param.type]:
            allowed = ", ".join(f":{m}" for m in _MODIFIERS[param.type]) or "none"
            raise _bad(f"{name} ({param.type}) takes no :{modifier} (modifiers: {allowed})", name)
        if modifier == "missing":
            if value not in ("true", "false"):
                raise _bad(f"{name}:missing takes true or false", name)
            return Missing(name, param.table, value == "true")
        return self._match(param, modifier, value)

    def _match(self, param: SearchParam, modifier: str, value: str) -> Condition:
        name = param.name
        if param.type == TOKEN:
            tokens = _tokens(value, name)
            self.count_values(len(tokens), name)
            return TokenMatch(name, tokens, negate=modifier == "not")
        if param.type == URI:
            uris = tuple((None, v) for v in _split(value) if v)
            self.count_values(len(uris), name)
            return TokenMatch(name, uris or ((None, ""),))
        if param.type == REFERENCE:
            refs = reference_values(param, value, modifier or None)
            self.count_values(len(refs), name)
            return TokenMatch(name, refs or ((None, "-"),))
        if param.type == STRING:
            texts = tuple(v for v in _split(value) if v)
            if not texts:
                raise _bad(f"{name} needs a value", name)
            self.count_values(len(texts), name)
            if modifier != "exact":
                texts = tuple(fold(v) for v in texts)
            return StringMatch(name, texts, modifier or "start")
        if param.type == DATE:
            dates = _dates(value, name)
            self.count_values(len(dates), name)
            return DateMatch(name, dates)
        return self._composite(name, value)

    def _composite(self, name: str, value: str) -> Condition:
        pairs = []
        for part in _split(value):
            first, dollar, second = part.partition("$")
            a, b = _tokens(first, name)[0] if first else (None, None), _tokens(second, name)[0] if second else None
            if not dollar or b is None or a[1] is None or b[1] is None:
                raise _bad(f"{name} takes code$value, each system|code or code", name)
            pairs.append((a[0], a[1], b[0], b[1]))
        self.count_values(len(pairs), name)
        return CompositeMatch(name, tuple(pairs))

    def chain(self, name: str, modifier: str, rest: str, value: str) -> Condition | None:
        """``param[:Type].name[:modifier]=value`` (one level)."""
        param = params_of(self.query.resource_type).get(name)
        if param is None or param.type != REFERENCE or param.canonical:
            self.unknown(name, f"{name!r} is not a reference parameter of {self.query.resource_type}: no chain")
            return None
        target = modifier or (param.targets[0] if len(param.targets) == 1 else "")
        if target not in param.targets:
            raise _bad(f"{name} may refer to {', '.join(param.targets)}: name one ({name}:Type.{rest})", name)
        inner_name, _, inner_modifier = rest.partition(":")
        inner = self.condition(target, inner_name, inner_modifier, value)
        return Chain(name, target, (inner,)) if inner is not None else None

    def include(self, name: str, value: str, modifier: str) -> None:
        reverse = name == "_revinclude"
        if modifier not in ("", "iterate", "recurse"):
            raise _bad(f"{name} takes :iterate only", name)
        source, _, rest = value.partition(":")
        param_name, _, target = rest.partition(":")
        param = params_of(source).get(param_name)
        if param is None or param.type != REFERENCE or param.canonical:
            raise _bad(f"{name} {value!r}: {param_name!r} is not a reference parameter of {source!r}", name)
        if target and target not in param.targets:
            raise _bad(f"{name} {value!r}: {param_name} does not refer to {target}", name)
        iterate = bool(modifier)
        if not reverse and not iterate and source != self.query.resource_type:
            raise _bad(
                f"_include {value!r} names {source}: without :iterate it must be {self.query.resource_type}", name
            )
        self.query.includes.append(Include(source, param_name, target or None, iterate, reverse))

    def result(self, name: str, value: str) -> None:
        query = self.query
        if name == "_count":
            query.count = _number(name, value, MAX_COUNT)
        elif name == "_offset":
            query.offset = _number(name, value, 10**9)
        elif name == "_sort":
            query.sort = [self._sort_key(v) for v in value.split(",") if v]
        elif name == "_summary":
            if value not in SUMMARIES:
                raise _bad(f"_summary takes {', '.join(SUMMARIES)}", name)
            query.summary = value
        elif name == "_elements":
            query.elements = tuple(e.rpartition(".")[2] for e in value.split(",") if e)
        elif name == "_total":
            if value not in TOTALS:
                raise _bad(f"_total takes {', '.join(TOTALS)}", name)
            query.total = value

    def _sort_key(self, text: str) -> SortKey:
        name = text.removeprefix("-")
        if name in ("_id", "_lastUpdated"):
            return SortKey(name, "", text.startswith("-"))
        param = params_of(self.query.resource_type).get(name)
        if param is None or param.type == COMPOSITE:
            names = ", ".join(sorted(n for n, k in PARAMETERS[self.query.resource_type].items() if k != COMPOSITE))
            raise _bad(f"_sort {name!r} is not a parameter of {self.query.resource_type} ({names})", "_sort")
        return SortKey(name, param.table, text.startswith("-"))


def parse_query(resource_type: str, params: Sequence[tuple[str, str]], *, strict: bool = True) -> Query:
    """The query of a search; OutcomeError 400 for a malformed value, an unknown modifier, or (``strict``) an
    unknown parameter."""
    parser = _Parser(resource_type, strict)
    for key, value in params:
        if key in _FORMATTING:
            continue
        if "\x00" in value or "\x00" in key:
            raise _bad(f"{key[:64]} must not contain a NUL character", key[:64])
        head, dot, rest = key.partition(".")
        name, _, modifier = head.partition(":")
        if name in ("_include", "_revinclude"):
            parser.include(name, value, modifier)
        elif name == "_totalMethod":
            if value not in _TOTAL_METHODS:
                raise _bad(f"_totalMethod takes {', '.join(_TOTAL_METHODS)}", name)
            parser.query.total = _TOTAL_METHODS[value]
        elif name in RESULT_PARAMS:
            if modifier or dot:
                raise _bad(f"{name} takes no modifier", name)
            parser.result(name, value)
        elif dot:
            cond = parser.chain(name, modifier, rest, value)
            if cond is not None:
                parser.query.conditions.append(cond)
            else:
                continue
        else:
            cond = parser.condition(resource_type, name, modifier, value)
            if cond is None:
                continue
            parser.query.conditions.append(cond)
        parser.query.used.append((key, value))
    return parser.query
