"""``_summary`` and ``_elements`` (search.html#summary, #elements): a copy of a resource with only some of its
top-level elements, marked ``SUBSETTED`` in ``meta.tag`` so that no client takes it for the whole resource
(and none writes it back as one). The summary elements are those R4 flags ``isSummary`` (the compact R4
model, :mod:`escape_fhir.fhir.r4model`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from escape_fhir.fhir.r4model import model

Json = dict[str, Any]
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
_ALWAYS = ("resourceType", "id", "meta")


@functools.cache
def _elements(resource_type: str) -> tuple[tuple[str, bool, bool, bool], ...]:
    """(name without ``[x]``, is a choice, is summary, is mandatory) of each top-level element of a type."""
    out = []
    for element in model().children(resource_type, resource_type):
        name = element.name
        out.append((name.removesuffix("[x]"), name.endswith("[x]"), element.is_summary, element.min > 0))
    return tuple(out)


def _matches(key: str, name: str, choice: bool) -> bool:
    return key == name or (choice and key.startswith(name) and key[len(name) : len(name) + 1].isupper())


def _keep(resource: Json, wanted: Iterable[tuple[str, bool]]) -> Json:
    names = list(wanted)
    kept = {k: v for k, v in resource.items() if k in _ALWAYS or any(_matches(k, n, c) for n, c in names)}
    meta = dict(kept.get("meta") or {})
    meta["tag"] = [*(meta.get("tag") or []), SUBSETTED]
    kept["meta"] = meta
    return kept


def summary(resource: Json, mode: str) -> Json:
    """The resource as ``_summary=mode`` shows it (``true``, ``text``, ``data``; ``false`` is all of it)."""
    kind = str(resource.get("resourceType", ""))
    if mode == "false":
        return resource
    if mode == "data":
        return _keep(resource, ((k, False) for k in resource if k != "text"))
    if mode == "text":
        return _keep(resource, [("text", False), *((n, c) for n, c, _, m in _elements(kind) if m)])
    return _keep(resource, ((n, c) for n, c, s, m in _elements(kind) if s or m))


def elements(resource: Json, names: Iterable[str]) -> Json:
    """The resource with only the named top-level elements (and those every resource keeps)."""
    kind = str(resource.get("resourceType", ""))
    choices = {n for n, c, _, _ in _elements(kind) if c}
    return _keep(resource, ((n, n in choices) for n in names))
