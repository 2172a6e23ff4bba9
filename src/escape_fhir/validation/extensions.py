"""Extensions: each one checked against its own definition (https://hl7.org/fhir/R4/extensibility.html).

An extension's definition is, in order: what the host profile unfolds for its slice; the profile its slice
names (``type.profile``); the StructureDefinition its ``url`` names. Then:

* ``ext-1``: sub-extensions or a value, not both (extensibility.html#Extension);
* the definition's ``context`` must allow the element it sits on (extensibility.html#context; element
  contexts by path or type, extension contexts by the parent extension's url; FHIRPath contexts are not
  evaluated);
* an extension defined as a modifier goes in ``modifierExtension`` and only there;
* its value and sub-extensions are walked against the definition (value type, binding, cardinality).

An unknown url: the HL7 validator, with its default "any extension allowed", reports an unknown extension
and still checks its structure; it cannot be ignored in ``modifierExtension``, whose meaning changes the
resource (extensibility.html#modifierExtension). So: a warning for ``extension``, an error for
``modifierExtension``. A relative url names a sub-extension, which only its parent extension can define;
under an extension whose definition is unknown it is walked as a plain Extension, not reported (what the
parent allows is unknown too).
Cross-version extensions (``http://hl7.org/fhir/5.0/StructureDefinition/extension-...``) resolve through
the definitions like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from escape_fhir.fhir.r4model import model
from escape_fhir.validation.checks import extension_has_value_or_children
from escape_fhir.validation.elements import Node

if TYPE_CHECKING:
    from escape_fhir.validation.walker import Host, Walk

__all__ = ["check"]

Json = dict[str, Any]
_ANYWHERE = frozenset({"Element", "Base"})
_ANY_RESOURCE = frozenset({"Resource", "DomainResource"})


def check(walk: Walk, node: Node, ext: Json, loc: str, host: Host, *, modifier: bool) -> None:
    """Check one extension ``ext`` at ``loc``, held by ``node`` (an extension element or one of its slices)."""
    from escape_fhir.validation.walker import Host

    extension_has_value_or_children(walk, ext, loc)
    url = ext.get("url")
    definition = _definition(walk, node, url, loc, host, modifier) if isinstance(url, str) else None
    scope = definition or walk.scope(node, "Extension")
    if scope is None:
        return
    inner = Host(
        "Extension", "Extension", "Extension", url if isinstance(url, str) else None, ext_defined=bool(definition)
    )
    walk.complex(node, "Extension", ext, loc, inner, scope=scope)


def _definition(walk: Walk, node: Node, url: str, loc: str, host: Host, modifier: bool) -> Node | None:
    """The node to check an extension against (None: base Extension), with issues about its use here."""
    if node.children:
        return node  # the host profile unfolds this extension slice: its snapshot is complete
    for t in node.types:
        for profile_url in t.profiles:
            named = walk.validator.compiled(profile_url)
            if named is not None:
                return named.root  # a slice of the host profile: placed there by the profile's author
    if ":" not in url:
        if not host.ext_defined:
            return None  # inside an extension we have no definition of: its sub-extensions cannot be judged
        where = f"extension {host.ext_url}" if host.ext_url else "its parent element"
        walk.add("error", "structure", f"sub-extension {url!r} is not defined by {where}", loc)
        return None
    found = walk.validator.compiled(url)
    if found is None:
        severity = "error" if modifier else "warning"
        walk.add(severity, "structure", f"extension {url} is unknown, so its content was not checked", loc)
        return None
    _check_context(walk, url, host, loc)
    _check_modifier(walk, found.root, url, modifier, loc)
    return found.root


def _check_modifier(walk: Walk, root: Node, url: str, modifier: bool, loc: str) -> None:
    if root.is_modifier and not modifier:
        walk.add("error", "structure", f"extension {url} is a modifier: it must be in modifierExtension", loc)
    elif modifier and not root.is_modifier:
        walk.add("error", "structure", f"extension {url} is not a modifier: it must be in extension", loc)


def _check_context(walk: Walk, url: str, host: Host, loc: str) -> None:
    sd = walk.definitions.structure(url)
    contexts = [c for c in (sd or {}).get("context") or () if isinstance(c, dict)]
    if not contexts or any(_allows(c, host) for c in contexts):
        return
    allowed = ", ".join(f"{c.get('type')}:{c.get('expression')}" for c in contexts)
    message = f"extension {url} is not allowed on {host.def_path} (its contexts: {allowed})"
    walk.add("error", "structure", message, loc)


def _allows(context: Json, host: Host) -> bool:
    kind, expression = context.get("type"), context.get("expression")
    if kind == "fhirpath":
        return True  # FHIRPath contexts are not evaluated here
    if kind == "extension":
        return expression == host.ext_url
    if kind != "element" or not isinstance(expression, str):
        return False
    if expression in _ANYWHERE or expression in (host.def_path, host.path, host.type_code):
        return True
    if host.is_resource:
        return expression in _ANY_RESOURCE and (expression == "Resource" or _is_domain_resource(host.type_code))
    return expression == "BackboneElement" and host.type_code == "BackboneElement"


def _is_domain_resource(rt: str) -> bool:
    sd = model().structure(rt)
    return sd is not None and sd.base == "DomainResource"
