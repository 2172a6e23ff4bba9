"""Extension definitions that no package in reach defines: cross-version extensions and a few built-ins.

**Cross-version extensions.** FHIR lets an instance of one version carry an element of another version as
an extension whose URL names that element (https://hl7.org/fhir/R5/versions.html#extensions, "Extensions
for converting between versions")::

    http://hl7.org/fhir/<M.m>/StructureDefinition/extension-<Path>     e.g. .../5.0/.../extension-Observation.triggeredBy

Such an extension needs no published definition: it stands for the element ``<Path>`` of FHIR ``M.m``.
UK Core 2.0.0 declares ``hl7.fhir.r5.core`` for the ones it uses (and defines most of them itself, which
wins: this source is last in the chain). For any other, :class:`CrossVersionSource` synthesises a
definition by this rule:

- context: the element's parent path (``Observation`` for ``Observation.triggeredBy``);
- when the same path exists in R4 with a data type (the R4 model can tell), ``value[x]`` is restricted to
  that element's R4 types and sub-extensions are not allowed;
- when it exists in R4 as a backbone element, the extension is complex: ``value[x]`` is not allowed and
  the children become sub-extensions named after them (any sub-extension is accepted);
- otherwise (an element new in that version: the model cannot tell its type) any ``value[x]`` type or
  sub-extensions are accepted, so the extension is understood rather than reported as unknown.

**Built-ins.** Extensions the project's Questionnaires use that are defined neither in R4 core nor in a
package the project depends on: ``itemWeight`` (FHIR extensions pack; R4's ``ordinalValue`` renamed, see
nhs-standards.md 7.1) and the two SDC extensions (``sdc-questionnaire-calculatedExpression``,
``sdc-questionnaire-observationExtract``), each with its context and value type only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from escape_fhir.fhir.r4model import R4Model, model
from escape_fhir.validation.definitions import Json, split_canonical
from escape_fhir.validation.sources import MemorySource, extension_definition

__all__ = ["CrossVersionSource", "builtin_extensions", "cross_version_extension"]

_CROSS_VERSION = re.compile(
    r"^http://hl7\.org/fhir/(\d+\.\d+)/StructureDefinition/extension-([A-Z][A-Za-z]*(?:\.[a-zA-Z]+)+)$"
)
_SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"


class CrossVersionSource:
    """Synthesises ``http://hl7.org/fhir/<M.m>/StructureDefinition/extension-<Path>`` on demand."""

    def __init__(self, r4: R4Model | None = None) -> None:
        self._model = r4 or model()
        self._made: dict[str, Json] = {}

    def resource(self, resource_type: str, url: str) -> Json | None:
        base, _ = split_canonical(url)
        if resource_type != "StructureDefinition" or _CROSS_VERSION.match(base) is None:
            return None
        if base not in self._made:
            self._made[base] = cross_version_extension(base, self._model)
        return self._made[base]

    def all(self, resource_type: str) -> Iterable[Json]:
        return list(self._made.values()) if resource_type == "StructureDefinition" else []


def cross_version_extension(url: str, r4: R4Model) -> Json:
    """The extension definition standing for the element a cross-version URL names (see the module doc)."""
    match = _CROSS_VERSION.match(url)
    assert match is not None
    version, path = match.groups()
    parent = path.rpartition(".")[0]
    elements: list[Json] = [
        {"id": "Extension", "path": "Extension", "short": f"FHIR {version} element {path} (cross-version)"},
        {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
    ]
    r4_element = r4.element(path.partition(".")[0], path.partition(".")[2])
    types = [t.code for t in r4_element.types] if r4_element and r4_element.path == path else []
    if types and set(types) != {"BackboneElement"}:
        elements.insert(1, {"id": "Extension.extension", "path": "Extension.extension", "max": "0"})
        elements.append(
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "type": [{"code": t} for t in types]}
        )
    elif types:
        elements.append({"id": "Extension.value[x]", "path": "Extension.value[x]", "max": "0"})
    name = "extension-" + path
    sd = extension_definition(url, name, [{"type": "element", "expression": parent}], elements)
    sd["publisher"] = "escape-fhir: synthesised by the FHIR cross-version extension rule"
    return sd


def _simple(url: str, contexts: list[str], value_type: str) -> Json:
    elements: list[Json] = [
        {"id": "Extension", "path": "Extension", "max": "1"},
        {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
        {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
        {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1, "type": [{"code": value_type}]},
    ]
    context = [{"type": "element", "expression": c} for c in contexts]
    return extension_definition(url, url.rpartition("/")[2], context, elements)


def builtin_extensions() -> MemorySource:
    """itemWeight and the SDC extensions the project uses (see the module doc)."""
    return MemorySource(
        [
            _simple(
                "http://hl7.org/fhir/StructureDefinition/itemWeight",
                ["Coding", "Questionnaire.item.answerOption", "CodeSystem.concept", "ValueSet.compose.include.concept"],
                "decimal",
            ),
            _simple(_SDC + "sdc-questionnaire-calculatedExpression", ["Questionnaire.item"], "Expression"),
            _simple(_SDC + "sdc-questionnaire-observationExtract", ["Questionnaire", "Questionnaire.item"], "boolean"),
        ]
    )
