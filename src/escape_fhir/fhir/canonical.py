"""The content of a message, independent of its wire form: a canonical JSON, its hash, and where two differ.

A message is identified by its Bundle id (FHIR messaging.html, "Reliable delivery"); a receiver must tell a
retry of the same message (answer it again, change nothing) from a different message under a reused id
(refuse it). The bytes cannot decide: the same content arrives as JSON or XML, indented or not, keys in
any order. So the comparison is of the parsed resource in one canonical form: JSON with keys sorted and no
insignificant whitespace (decimals keep their exact text, :mod:`escape_fhir.fhir.jsonio`), hashed with
SHA-256.

What does not take part: ``Bundle.timestamp`` and ``meta.lastUpdated`` of the Bundle and of every entry's
resource (a resource contained in another keeps its stamp: it is part of that resource's content). They record when the sender built the message (BaRS: the same instant on every resource of a new
message, nhs-standards.md 1.3), and a sender that rebuilds a message to retry it stamps them again; the
clinical content does not change with them. Everything else does take part, ``meta.versionId`` included
(the BaRS application version).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from escape_fhir.fhir.jsonio import dumps

__all__ = ["canonical_bytes", "content_hash", "differences", "stable_content"]

Json = dict[str, Any]

#: Elements of the Bundle itself left out (module docstring).
VOLATILE_BUNDLE = frozenset({"timestamp"})
#: Elements of any resource's ``meta`` left out.
VOLATILE_META = frozenset({"lastUpdated"})


def stable_content(resource: Json) -> Json:
    """``resource`` without the elements that may change when the same message is sent again (a shallow
    copy: only the Bundle, its entries and their resources are copied, what lies below them is shared)."""
    out = _without_last_updated(resource)
    if resource.get("resourceType") != "Bundle":
        return out
    out = {k: v for k, v in out.items() if k not in VOLATILE_BUNDLE}
    entries = out.get("entry")
    if isinstance(entries, list):
        out["entry"] = [_stable_entry(e) for e in entries]
    return out


def _stable_entry(entry: Any) -> Any:
    if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
        return entry
    return {**entry, "resource": _without_last_updated(entry["resource"])}


def _without_last_updated(resource: Json) -> Json:
    meta = resource.get("meta")
    if not isinstance(meta, dict) or not VOLATILE_META.intersection(meta):
        return resource
    kept = {k: v for k, v in meta.items() if k not in VOLATILE_META}
    out = {k: v for k, v in resource.items() if k != "meta"}
    if kept:
        out["meta"] = kept
    return out


def _dumps(value: Any) -> bytes:
    """Sorted keys, decimals as written, any depth the reader allowed (jsonio writes past orjson's 255 levels)."""
    return dumps(value, sort_keys=True)


def canonical_bytes(resource: Json) -> bytes:
    """The canonical JSON of ``resource``'s stable content: keys sorted, no whitespace."""
    return _dumps(stable_content(resource))


def content_hash(resource: Json) -> str:
    """``sha256:<hex>`` of the canonical JSON: equal for a JSON and an XML delivery of the same content."""
    return "sha256:" + hashlib.sha256(canonical_bytes(resource)).hexdigest()


def differences(before: Json, after: Json, root: str = "", limit: int = 10) -> list[str]:
    """FHIRPath locations (with indices) where the stable content of ``after`` differs from ``before``,
    in document order, at most ``limit``. ``root`` defaults to the resource type."""
    start = root or str(after.get("resourceType") or before.get("resourceType") or "")
    found = []
    for location in _walk(stable_content(before), stable_content(after), start):
        found.append(location)
        if len(found) >= limit:
            break
    return found


def _walk(a: Any, b: Any, path: str) -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in _keys(a, b):
            # A primitive's extension (``_birthDate``) is reported at the primitive (FHIR json.html#primitive).
            name = key[1:] if key.startswith("_") else key
            yield from _walk(a.get(key), b.get(key), f"{path}.{name}" if path else name)
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            yield from _walk(a[i] if i < len(a) else None, b[i] if i < len(b) else None, f"{path}[{i}]")
    elif not _same(a, b):
        yield path


def _keys(a: Json, b: Json) -> list[str]:
    """Keys of both, in ``b``'s order then ``a``'s (resourceType first where both have it)."""
    return list(dict.fromkeys([*b, *a]))


def _same(a: Any, b: Any) -> bool:
    """Equal as canonical JSON: ``true`` is not ``1``, and a decimal's text counts (``1.50`` is not ``1.5``)."""
    return a is b or _dumps(a) == _dumps(b)
