"""Conditions of a transaction: ``ifNoneExist``, conditional update URLs and conditional references (FHIR R4
http.html#ccreate, #cond-update, #trules "Conditional References").

A condition is the query part of a search URL (``identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018``,
percent-encoded or not). Only ``identifier`` is supported, the parameter senders use to name a Patient,
Organization or Practitioner they hold no id of (NHS number, ODS code, GMP/GMC number); several are ANDed,
commas inside one are ORed (search.html#token). Any other parameter is refused (422) rather than ignored, so
that a condition never matches more than it says.

A resource matches when it holds every condition, judged on the search tokens the store keeps for it
(``storage.index.tokens_of``), so the Bundle's own entries and the stored resources are matched alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from escape_fhir.errors import Issue
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.service.search import token_values
from escape_fhir.storage import Repository, TokenFilter
from escape_fhir.storage.index import tokens_of

Json = dict[str, Any]
SUPPORTED = ("identifier",)
#: ``Type?query``: a conditional reference (http.html#trules); ``Type`` as FHIR names resource types.
CONDITIONAL_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)\?(.+)$")


@dataclass(frozen=True)
class Condition:
    text: str
    filters: tuple[TokenFilter, ...]

    def lock_names(self, kind: str) -> list[str]:
        """One name per identifier the condition names (``Repository.lock_names``)."""
        return [f"condition|{kind}|{f.param}|{system}|{value}" for f in self.filters for system, value in f.values]

    def holds_for(self, resource: Json) -> bool:
        tokens = [(t.param, t.system, t.value) for t in tokens_of(resource)]
        return all(any(_holds(tokens, f.param, system, value) for system, value in f.values) for f in self.filters)


def _holds(tokens: list[tuple[str, str, str]], param: str, system: str | None, value: str) -> bool:
    return any(p == param and v == value and (system is None or s == system) for p, s, v in tokens)


def parse_condition(text: str, where: str) -> Condition:
    """The condition of a query string; OutcomeError 400 (empty) or 422 (an unsupported parameter)."""
    pairs = parse_qsl(text.lstrip("?"), keep_blank_values=True)
    if any(ord(c) < 32 for pair in pairs for c in "".join(pair)):  # NUL cannot be stored or searched on PostgreSQL
        raise OutcomeError(
            Problem.BAD_REQUEST, [Issue("error", "invalid", "a condition has control characters", where)]
        )
    if not pairs:
        raise OutcomeError(Problem.BAD_REQUEST, [Issue("error", "invalid", f"no condition in {text!r}", where)])
    filters = []
    for name, value in pairs:
        if name not in SUPPORTED:
            supported = ", ".join(f"{n}=system|value" for n in SUPPORTED)
            text_ = f"condition {name}= is not supported here ({supported} only)"
            raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "not-supported", text_, where)])
        values = token_values(value)
        if not values:
            raise OutcomeError(Problem.BAD_REQUEST, [Issue("error", "invalid", f"{name}= has no value", where)])
        filters.append(TokenFilter(name, values))
    return Condition(text, tuple(filters))


def stored_matches(repo: Repository, kind: str, condition: Condition, limit: int = 2) -> list[str]:
    """Ids of current resources of ``kind`` matching ``condition`` (at most ``limit``: enough to tell one
    from several)."""
    found, _ = repo.search(kind, list(condition.filters), count=limit)
    return [s.resource_id for s in found]


def multiple(text: str, where: str) -> OutcomeError:
    """412 for a condition that names more than one resource (http.html#cond-update: "Multiple matches")."""
    issue = Issue("error", "multiple-matches", f"{text} matches more than one resource; it must name one", where)
    return OutcomeError(Problem.PRECONDITION_FAILED, [issue])


def conditional_references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(location, reference) of every conditional reference in ``node``, in document order."""
    if isinstance(node, dict):
        target = node.get("reference")
        if isinstance(target, str) and CONDITIONAL_REFERENCE.match(target):
            yield f"{path}.reference", target
        for key, value in node.items():
            if key != "reference":
                yield from conditional_references(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from conditional_references(value, f"{path}[{i}]")


def resolve_reference(
    repo: Repository, target: str, where: str, in_bundle: Iterable[tuple[str, str, Json]], replaced: set[str]
) -> str:
    """``Type/id`` of the one resource a conditional reference names, among the Bundle's entries being
    created or updated (``in_bundle``: type, id, resource) and the store (less ``replaced``: what this Bundle
    deletes or rewrites, judged by its new content). None found: 422 (not-found); several: 412 (http.html#trules: "the transaction fails")."""
    match = CONDITIONAL_REFERENCE.match(target)
    assert match is not None
    kind, query = match.groups()
    condition = parse_condition(query, where)
    found = {f"{k}/{rid}" for k, rid, res in in_bundle if k == kind and condition.holds_for(res)}
    found |= {f"{kind}/{rid}" for rid in stored_matches(repo, kind, condition, limit=3)} - replaced
    if len(found) > 1:
        raise multiple(f"reference {target}", where)
    if not found:
        text = f"reference {target} names no resource, in this Bundle or held here"
        raise OutcomeError(Problem.UNPROCESSABLE, [Issue("error", "not-found", text, where)])
    return found.pop()
