"""Bundle-wide rules that no single element's definition states (https://hl7.org/fhir/R4/bundle.html).

* ``fullUrl`` (bundle.html#bundle-unique, #6.1.4.1): an absolute URI (``urn:uuid:``, ``urn:oid:`` or an
  absolute URL, never a relative ``Type/id``: bundle-definitions.html#Bundle.entry.fullUrl, "the Absolute URL
  for the resource"; the reference validator reports a relative one as an error); present on every entry with a resource (except a
  POST in a transaction or batch, whose resource has no id yet); unique, except that a ``history`` Bundle
  may repeat it and that entries with different ``meta.versionId`` may share it (``bdl-7``); a RESTful
  ``fullUrl`` (``[base]/Type/id``) must end with the resource's type and id.
* references (bundle.html#references, "Resolving references in Bundles"): every ``urn:uuid:``/``urn:oid:``
  reference must be the ``fullUrl`` of an entry (a URN means nothing outside the Bundle); a relative
  ``Type/id`` reference is resolved against the base of the referring entry's RESTful ``fullUrl``, or
  against any entry with that type and id; one that cannot be found is a warning, since it may refer to a
  resource on the server. Absolute URLs and local ``#id`` references are left alone (``ref-1`` checks the
  latter).
* ``message`` (https://hl7.org/fhir/R4/messaging.html): the first entry is the MessageHeader and its
  ``focus`` references resolve inside the Bundle. ``document``: the first entry is a Composition.
* ``transaction``/``batch`` entries carry ``request``; ``-response`` entries carry ``response``.
"""

from __future__ import annotations

import re
from typing import Any

from escape_fhir.errors import Issue

__all__ = ["check_bundle"]

Json = dict[str, Any]

# A RESTful URL or reference: [base/]Type/id[/_history/vid] (https://hl7.org/fhir/R4/references.html#regex).
_RESTFUL = re.compile(
    r"(?:(?P<base>(?:https?://|/).*?)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)
_URN = ("urn:uuid:", "urn:oid:")
#: An absolute URI starts with a scheme (RFC 3986 section 3.1): ``urn:``, ``http:``, ``https:`` ...
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_NEEDS = {
    "transaction": "request",
    "batch": "request",
    "transaction-response": "response",
    "batch-response": "response",
}
_FIRST = {"message": "MessageHeader", "document": "Composition"}


def check_bundle(bundle: Json, base: str = "Bundle") -> list[Issue]:
    """Issues with the entries of one Bundle (JSON) as a whole; ``base`` is its location."""
    listed = bundle.get("entry")
    entries = [e if isinstance(e, dict) else {} for e in (listed if isinstance(listed, list) else [])]
    kind = str(bundle.get("type", ""))
    issues = _full_urls(entries, kind, base)
    issues += _entry_parts(entries, kind, base)
    reference_issues = _references(entries, base)
    if kind in _FIRST:
        issues += _first_entry(entries, kind, base)
    if kind == "message":
        reference_issues = _message_focus(entries, base, reference_issues)
    return issues + reference_issues


# --- fullUrl ---------------------------------------------------------------------------------------------


def _full_urls(entries: list[Json], kind: str, base: str) -> list[Issue]:
    issues: list[Issue] = []
    seen: dict[tuple[str, Any], int] = {}
    for i, entry in enumerate(entries):
        resource, full_url, here = entry.get("resource"), entry.get("fullUrl"), f"{base}.entry[{i}]"
        if not isinstance(resource, dict):
            continue
        if not isinstance(full_url, str):
            if not _may_lack_full_url(entry, kind):
                issues.append(Issue("error", "required", "an entry with a resource must have a fullUrl", here))
            continue
        if not _ABSOLUTE.match(full_url):
            message = f"The fullUrl must be an absolute URL (not {full_url!r})"
            issues.append(Issue("error", "invalid", message, f"{here}.fullUrl"))
        else:
            issues += _full_url_matches(full_url, resource, f"{here}.fullUrl")
        meta = resource.get("meta")
        version = meta.get("versionId") if isinstance(meta, dict) else None  # a wrong type: the structure check's
        key = (full_url, version if isinstance(version, str) else None)
        if key in seen and kind != "history":
            message = f"fullUrl {full_url!r} is already used by entry[{seen[key]}]"
            issues.append(Issue("error", "duplicate", message, f"{here}.fullUrl"))
        seen.setdefault(key, i)
    return issues


def _may_lack_full_url(entry: Json, kind: str) -> bool:
    request = entry.get("request")
    return kind in ("transaction", "batch") and isinstance(request, dict) and request.get("method") == "POST"


def _full_url_matches(full_url: str, resource: Json, location: str) -> list[Issue]:
    """bundle.html#6.1.4.1: a RESTful fullUrl "SHALL" end with the resource's type and id."""
    if full_url.startswith(_URN):
        return []
    match = _RESTFUL.fullmatch(full_url)
    if match is None:
        return []
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if match["type"] == rtype and match["id"] == rid:
        return []
    message = f"fullUrl {full_url!r} does not end with the resource's type and id ({rtype}/{rid})"
    return [Issue("error", "invalid", message, location)]


def _entry_parts(entries: list[Json], kind: str, base: str) -> list[Issue]:
    part = _NEEDS.get(kind)
    if part is None:
        return []
    message = f"every entry of a {kind} Bundle must have a {part}"
    return [Issue("error", "required", message, f"{base}.entry[{i}]") for i, e in enumerate(entries) if part not in e]


def _first_entry(entries: list[Json], kind: str, base: str) -> list[Issue]:
    expected = _FIRST[kind]
    first = entries[0].get("resource") if entries else None
    if isinstance(first, dict) and first.get("resourceType") == expected:
        return []
    location = f"{base}.entry[0].resource" if entries else f"{base}.entry"
    return [Issue("error", "invalid", f"the first entry of a {kind} Bundle must be a {expected}", location)]


# --- references ------------------------------------------------------------------------------------------


def _references(entries: list[Json], base: str) -> list[Issue]:
    index = _Index(entries)
    issues: list[Issue] = []
    for i, entry in enumerate(entries):
        resource = entry.get("resource")
        if not isinstance(resource, dict) or resource.get("resourceType") == "Bundle":
            continue  # a nested Bundle resolves its own references
        for location, ref in _reference_strings(resource, f"{base}.entry[{i}].resource"):
            issue = _unresolved(index, ref, entry.get("fullUrl"), location)
            if issue is not None:
                issues.append(issue)
    return issues


def _unresolved(index: _Index, ref: str, full_url: Any, location: str) -> Issue | None:
    if ref.startswith("#") or index.find(ref, full_url) is not None:
        return None
    if ref.startswith(_URN):
        return Issue("error", "not-found", f"reference {ref!r} does not resolve to an entry of the Bundle", location)
    if _RESTFUL.fullmatch(ref) and not ref.startswith(("http:", "https:")):
        message = f"reference {ref!r} is not in the Bundle; it may refer to a resource on the server"
        return Issue("warning", "not-found", message, location)
    return None  # an absolute URL elsewhere, or not a literal reference at all


def _reference_strings(node: Any, location: str) -> list[tuple[str, str]]:
    """Every ``Reference.reference`` string under a resource, with its location; nested Bundles excluded."""
    found: list[tuple[str, str]] = []
    _collect_references(node, location, found)
    return found


def _collect_references(node: Any, location: str, found: list[tuple[str, str]]) -> None:
    """Only objects and arrays are descended (most members are strings), locations built as needed."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, dict | list):
                _collect_references(item, f"{location}[{i}]", found)
        return
    if isinstance(node.get("reference"), str):
        found.append((f"{location}.reference", node["reference"]))
    for key, value in node.items():
        if isinstance(value, list) or (isinstance(value, dict) and value.get("resourceType") != "Bundle"):
            _collect_references(value, f"{location}.{key}", found)


class _Index:
    """The entries by fullUrl and by ``Type/id``, for resolving references (bundle.html#references)."""

    def __init__(self, entries: list[Json]) -> None:
        self.by_url: dict[str, int] = {}
        self.by_type_id: dict[str, int] = {}
        for i, entry in enumerate(entries):
            resource = entry.get("resource")
            if isinstance(entry.get("fullUrl"), str):
                self.by_url.setdefault(entry["fullUrl"], i)
            if isinstance(resource, dict) and "id" in resource:
                self.by_type_id.setdefault(f"{resource.get('resourceType')}/{resource['id']}", i)

    def find(self, ref: str, full_url: Any) -> int | None:
        """The entry a reference points to: exact fullUrl, then relative to the referrer's RESTful base."""
        if ref in self.by_url:
            return self.by_url[ref]
        match = _RESTFUL.fullmatch(ref)
        if match is None or match["base"]:
            return None
        type_id = f"{match['type']}/{match['id']}"
        referrer = _RESTFUL.fullmatch(full_url) if isinstance(full_url, str) else None
        if referrer is not None and referrer["base"] and f"{referrer['base']}/{type_id}" in self.by_url:
            return self.by_url[f"{referrer['base']}/{type_id}"]
        return self.by_type_id.get(type_id)


# --- message ---------------------------------------------------------------------------------------------


def _message_focus(entries: list[Json], base: str, reference_issues: list[Issue]) -> list[Issue]:
    """messaging.html: the focus resources travel in the message; an unresolved focus is an error."""
    header = entries[0].get("resource") if entries else None
    if not isinstance(header, dict) or header.get("resourceType") != "MessageHeader":
        return reference_issues
    index = _Index(entries)
    focus_issues: dict[str, Issue] = {}
    for j, focus in enumerate(header.get("focus") or []):
        ref = focus.get("reference") if isinstance(focus, dict) else None
        location = f"{base}.entry[0].resource.focus[{j}].reference"
        if isinstance(ref, str) and index.find(ref, entries[0].get("fullUrl")) is None:
            message = f"MessageHeader.focus {ref!r} does not resolve to an entry of the message Bundle"
            focus_issues[location] = Issue("error", "not-found", message, location)
    kept = [issue for issue in reference_issues if issue.location not in focus_issues]
    return kept + list(focus_issues.values())
