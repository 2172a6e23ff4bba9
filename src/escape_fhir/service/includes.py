"""``_include`` and ``_revinclude`` (search.html#include): the resources a page of matches refers to, and
those that refer to it, fetched with one query per include parameter and round.

``:iterate`` follows the included resources again (a Task's ServiceRequest, then that request's Patient:
``_include=Task:focus&_include:iterate=ServiceRequest:patient``), at most :data:`MAX_ROUNDS` rounds and
:data:`MAX_INCLUDED` resources, so a query cannot walk the whole database.
"""

from __future__ import annotations

from collections.abc import Sequence

from escape_fhir.service.search import Include
from escape_fhir.storage import Repository, Stored

MAX_ROUNDS = 4
MAX_INCLUDED = 1000
Key = tuple[str, str]


def _key(reference: str) -> Key | None:
    pieces = reference.split("/")
    return (pieces[-2], pieces[-1]) if len(pieces) >= 2 and pieces[-2] and pieces[-1] else None


def included(repo: Repository, matches: Sequence[Stored], includes: Sequence[Include]) -> list[Stored]:
    """The resources ``includes`` add to ``matches`` (none of them twice, none of the matches again)."""
    seen: set[Key] = {(s.resource_type, s.resource_id) for s in matches}
    out: list[Stored] = []
    frontier = list(matches)
    for round_number in range(MAX_ROUNDS):
        wanted = [i for i in includes if i.iterate or round_number == 0]
        if not frontier or not wanted or len(out) >= MAX_INCLUDED:
            break
        found: list[Stored] = []
        for inc in wanted:
            sources = [s for s in frontier if s.resource_type == inc.source] if not inc.reverse else frontier
            found += _reverse(repo, inc, sources) if inc.reverse else _forward(repo, inc, sources)
        frontier = []
        for stored in found:
            key = (stored.resource_type, stored.resource_id)
            if key not in seen and not stored.deleted and len(out) < MAX_INCLUDED:
                seen.add(key)
                out.append(stored)
                frontier.append(stored)
        if not any(i.iterate for i in includes):
            break
    return out


def _forward(repo: Repository, inc: Include, sources: Sequence[Stored]) -> list[Stored]:
    refs = repo.references(inc.source, [s.resource_id for s in sources], inc.param)
    keys = [k for k in map(_key, refs) if k is not None and (inc.target is None or k[0] == inc.target)]
    held = repo.currents(keys[:MAX_INCLUDED])
    return [held[k] for k in keys if k in held]


def _reverse(repo: Repository, inc: Include, targets: Sequence[Stored]) -> list[Stored]:
    refs = [
        f"{s.resource_type}/{s.resource_id}" for s in targets if inc.target is None or s.resource_type == inc.target
    ]
    return repo.referring(inc.source, inc.param, refs, MAX_INCLUDED)
