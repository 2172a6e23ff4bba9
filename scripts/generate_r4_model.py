"""Generate the compact FHIR R4 (4.0.1) model shipped in ``src/escape_fhir/data/r4-model.json.gz``.

Usage::

    python scripts/generate_r4_model.py [--shared ../shared] [--out src/escape_fhir/data/r4-model.json.gz]

Reads ``<shared>/fhir/r4-core/{profiles-types,profiles-resources,valuesets,v3-codesystems}.json.gz`` (the
official R4 4.0.1 definitions) and writes one gzipped JSON document. The output is deterministic (sorted
where the source has no order, gzip ``mtime=0``), so re-running on the same input gives identical bytes.

What is kept (no prose: no definitions, comments, descriptions, mappings):

- ``types``: every primitive type, complex data type (including the constraint profiles SimpleQuantity and
  MoneyQuantity) and resource type, with ``kind``, ``abstract``, ``base``, ``derivation`` and its snapshot
  ``elements`` in order. Each element is a dict with ``path``, ``min``, ``max`` and, only when present:
  ``types`` (a code string, or ``{"code", "targetProfile", "profile"}`` with core canonicals shortened to the
  type name), ``contentReference`` (without the ``#``), ``binding`` (``strength``, ``valueSet``),
  ``constraints`` (indices into the top-level ``constraints`` table), ``modifier``, ``summary``,
  ``representation``, ``slicing``, ``sliceName``, ``condition``, ``maxLength``, and any ``fixed*`` /
  ``pattern*`` / ``minValue*`` / ``maxValue*`` as in the source.
- ``constraints``: ``[key, severity, expression, source type, human]`` rows (FHIRPath only; ``human`` is the
  invariant's own one-line statement, which validation messages quote).
- ``primitives``: for each primitive type, the regex of its value and its JSON form (number/boolean/string).
- ``valueSets``: for every value set bound with *required* strength, ``{system: [codes]}``;
  ``unexpandedValueSets`` lists those that could not be expanded from the compose (with the reason).
- ``extensions``: the core extension definitions (``extension-definitions.json.gz``) by URL, each with its
  ``context``, ``contextInvariant`` and *differential* elements without prose (``id``, ``path``,
  ``sliceName``, ``min``, ``max``, ``type``, ``binding`` strength and value set, ``slicing``, ``constraint``,
  ``isModifier``, ``fixed*`` / ``pattern*``); snapshots are generated from them at run time
  (``escape_fhir.validation.snapshot``).
- (a second file, ``r4-terminology.json.gz``, see :func:`build_terminology`) ``displays``: for every code
  system of the R4 definitions held with ``content = complete``, ``{system: {code: [display, designation...]}}``
  (designations without a language or in English only); ``vitalSigns``: the R4 vital-signs profiles by LOINC
  code with the unit rule of each; ``ucumCommon``: the codes of the ``ucum-common`` value set (valid UCUM,
  checked without a parser).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
MAX_VS_EXT = "http://hl7.org/fhir/StructureDefinition/elementdefinition-maxValueSet"
# https://hl7.org/fhir/R4/json.html#primitive: these are JSON numbers / booleans, every other primitive is a
# string. (4.0.1 types positiveInt.value and unsignedInt.value as System.String, so the table is explicit.)
JSON_KIND = {
    "integer": "number",
    "positiveInt": "number",
    "unsignedInt": "number",
    "decimal": "number",
    "boolean": "boolean",
}
VALUE_PREFIXES = ("fixed", "pattern", "minValue", "maxValue")

Json = dict[str, Any]


def load_bundle(path: Path) -> list[Json]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [e["resource"] for e in json.load(f)["entry"]]


def short_canonical(url: str) -> str:
    """Core StructureDefinition canonicals become the bare type name; others are kept whole."""
    return url[len(CORE_SD) :] if url.startswith(CORE_SD) else url


def type_code(t: Json, is_primitive_value: bool) -> str:
    """The FHIR type of an element type entry.

    Element.id, Extension.url and Resource.id are typed ``http://hl7.org/fhirpath/System.String`` with the
    ``structuredefinition-fhir-type`` extension naming the FHIR type: use that FHIR type. The ``value`` of a
    primitive keeps its FHIRPath system type (``System.Decimal``...), see
    https://hl7.org/fhir/R4/datatypes.html#primitive.
    """
    code: str = t["code"]
    if is_primitive_value:
        return code.replace("http://hl7.org/fhirpath/", "")
    for ext in t.get("extension", []):
        if ext["url"] == FHIR_TYPE_EXT:
            return str(ext["valueUrl"])
    return code


def compact_type(t: Json, is_primitive_value: bool) -> str | Json:
    code = type_code(t, is_primitive_value)
    extra: Json = {k: [short_canonical(u) for u in t[k]] for k in ("targetProfile", "profile") if k in t}
    return {"code": code, **extra} if extra else code


class ConstraintTable:
    """Interns constraints so that ele-1 and friends are stored once."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.index: dict[tuple[str, ...], int] = {}

    def add(self, c: Json) -> int:
        row = (
            c["key"],
            c["severity"],
            c.get("expression", ""),
            short_canonical(c.get("source", "")),
            c.get("human", ""),
        )
        if row not in self.index:
            self.index[row] = len(self.rows)
            self.rows.append(list(row))
        return self.index[row]


def compact_element(el: Json, primitive_value: bool, constraints: ConstraintTable) -> Json:
    out: Json = {"path": el["path"], "min": el["min"], "max": el["max"]}
    if "type" in el:
        out["types"] = [compact_type(t, primitive_value) for t in el["type"]]
    if "contentReference" in el:
        out["contentReference"] = el["contentReference"].lstrip("#")
    if "binding" in el:
        out["binding"] = compact_binding(el["binding"])
    if el.get("constraint"):
        out["constraints"] = [constraints.add(c) for c in el["constraint"]]
    if el.get("isModifier"):
        out["modifier"] = True
    if el.get("isSummary"):
        out["summary"] = True
    for key in ("representation", "sliceName", "condition", "maxLength"):
        if key in el:
            out[key] = el[key]
    if "slicing" in el:
        out["slicing"] = {k: v for k, v in el["slicing"].items() if k != "description"}
    out.update({k: v for k, v in el.items() if k.startswith(VALUE_PREFIXES)})
    return out


def compact_binding(b: Json) -> Json:
    out: Json = {"strength": b["strength"]}
    if "valueSet" in b:
        out["valueSet"] = b["valueSet"]
    for ext in b.get("extension", []):
        if ext["url"] == MAX_VS_EXT:
            out["maxValueSet"] = ext.get("valueCanonical")
    return out


def primitive_info(sd: Json) -> Json:
    """Regex and JSON form of a primitive, from its ``value`` element (https://hl7.org/fhir/R4/json.html#primitive)."""
    value = next(el for el in sd["snapshot"]["element"] if el["path"] == sd["type"] + ".value")
    info: Json = {"json": JSON_KIND.get(sd["type"], "string")}
    for t in value.get("type", []):
        for ext in t.get("extension", []):
            if ext["url"] == REGEX_EXT:
                info["regex"] = ext["valueString"]
    return info


def compact_structure(sd: Json, constraints: ConstraintTable) -> Json:
    primitive = sd["kind"] == "primitive-type"
    value_path = sd["type"] + ".value"
    base = sd.get("baseDefinition")
    return {
        "kind": sd["kind"],
        "abstract": sd.get("abstract", False),
        "type": sd["type"],
        "base": short_canonical(base) if base else None,
        "derivation": sd.get("derivation"),
        "elements": [
            compact_element(el, primitive and el["path"] == value_path, constraints) for el in sd["snapshot"]["element"]
        ],
    }


# ---- value sets -------------------------------------------------------------------------------------------


class Unexpandable(Exception):
    """A value set whose compose cannot be expanded from the core definitions alone."""


def walk_concepts(concepts: list[Json]) -> Iterator[tuple[Json, list[Json]]]:
    """Yield (concept, its descendants) for a nested concept tree."""
    for c in concepts:
        yield c, list(flatten(c.get("concept", [])))
        yield from walk_concepts(c.get("concept", []))


def flatten(concepts: list[Json]) -> Iterator[Json]:
    for c in concepts:
        yield c
        yield from flatten(c.get("concept", []))


class Expander:
    def __init__(self, code_systems: dict[str, Json], value_sets: dict[str, Json]) -> None:
        self.code_systems = code_systems
        self.value_sets = value_sets

    def system_concepts(self, system: str) -> list[Json]:
        cs = self.code_systems.get(system)
        if cs is None or cs.get("content") != "complete":
            raise Unexpandable(f"code system {system} not available in full")
        return list(cs.get("concept", []))

    def filtered(self, system: str, f: Json) -> set[str]:
        """Hierarchy filters only (https://hl7.org/fhir/R4/valueset-filter-operator.html)."""
        if f["property"] != "concept" or f["op"] not in ("is-a", "descendent-of", "is-not-a"):
            raise Unexpandable(f"filter {f['property']} {f['op']} not supported")
        concepts = self.system_concepts(system)
        for c, below in walk_concepts(concepts):
            if c["code"] == f["value"]:
                codes = {d["code"] for d in below}
                if f["op"] == "is-a":
                    return codes | {c["code"]}
                if f["op"] == "descendent-of":
                    return codes
                return {x["code"] for x in flatten(concepts)} - codes - {c["code"]}
        raise Unexpandable(f"filter value {f['value']} not in {system}")

    def include(self, inc: Json, stack: tuple[str, ...]) -> set[tuple[str, str]]:
        sets: list[set[tuple[str, str]]] = [self.expand(vs, stack) for vs in inc.get("valueSet", [])]
        system = inc.get("system")
        if system is not None:
            if "concept" in inc:
                codes = {c["code"] for c in inc["concept"]}
            elif "filter" in inc:
                codes = set.intersection(*(self.filtered(system, f) for f in inc["filter"]))
            else:
                codes = {c["code"] for c in flatten(self.system_concepts(system))}
            sets.append({(system, c) for c in codes})
        if not sets:
            raise Unexpandable("empty include")
        return set.intersection(*sets)

    def expand(self, url: str, stack: tuple[str, ...] = ()) -> set[tuple[str, str]]:
        url = url.split("|")[0]
        vs = self.value_sets.get(url)
        if vs is None:
            raise Unexpandable("value set not in the core definitions")
        if url in stack:
            raise Unexpandable("circular value set")
        compose = vs.get("compose")
        if compose is None:
            raise Unexpandable("no compose")
        result: set[tuple[str, str]] = set()
        for inc in compose.get("include", []):
            result |= self.include(inc, (*stack, url))
        for exc in compose.get("exclude", []):
            result -= self.include(exc, (*stack, url))
        return result


def required_value_sets(structures: list[Json]) -> list[str]:
    urls = {
        el["binding"]["valueSet"].split("|")[0]
        for sd in structures
        for el in sd["snapshot"]["element"]
        if el.get("binding", {}).get("strength") == "required" and "valueSet" in el["binding"]
    }
    return sorted(urls)


def expand_required(structures: list[Json], terminology: list[Json]) -> tuple[Json, Json]:
    code_systems = {r["url"]: r for r in terminology if r["resourceType"] == "CodeSystem"}
    value_sets = {r["url"]: r for r in terminology if r["resourceType"] == "ValueSet"}
    expander = Expander(code_systems, value_sets)
    expanded: Json = {}
    failed: Json = {}
    for url in required_value_sets(structures):
        try:
            pairs = expander.expand(url)
        except Unexpandable as e:
            failed[url] = str(e)
            continue
        by_system: dict[str, list[str]] = {}
        for system, code in sorted(pairs):
            by_system.setdefault(system, []).append(code)
        expanded[url] = by_system
    return expanded, failed


# ---- core extensions -------------------------------------------------------------------------------------

EXTENSION_KEYS = frozenset({"id", "path", "sliceName", "min", "max", "type", "slicing", "isModifier", "maxLength"})


def compact_extension_element(el: Json) -> Json:
    out: Json = {k: v for k, v in el.items() if k in EXTENSION_KEYS or k.startswith(("fixed", "pattern"))}
    if "binding" in el:
        out["binding"] = {k: v for k, v in el["binding"].items() if k in ("strength", "valueSet")}
    if "slicing" in out:
        out["slicing"] = {k: v for k, v in out["slicing"].items() if k != "description"}
    if el.get("constraint"):
        keep = ("key", "severity", "human", "expression", "source")
        out["constraint"] = [{k: c[k] for k in keep if k in c} for c in el["constraint"]]
    return out


def compact_extensions(definitions: list[Json]) -> Json:
    """Core extensions by URL: context and differential (https://hl7.org/fhir/R4/extensibility.html)."""
    return {
        sd["url"]: {
            "context": sd.get("context", []),
            "contextInvariant": sd.get("contextInvariant", []),
            "elements": [compact_extension_element(el) for el in sd["differential"]["element"]],
        }
        for sd in sorted(definitions, key=lambda r: r["url"])
        if sd["resourceType"] == "StructureDefinition"
    }


# ---- main -------------------------------------------------------------------------------------------------


def build(core: Path) -> Json:
    resources = load_bundle(core / "profiles-types.json.gz") + load_bundle(core / "profiles-resources.json.gz")
    structures = [
        r
        for r in resources
        if r["resourceType"] == "StructureDefinition" and r["kind"] in ("primitive-type", "complex-type", "resource")
    ]
    terminology = load_bundle(core / "valuesets.json.gz") + load_bundle(core / "v3-codesystems.json.gz")
    constraints = ConstraintTable()
    types = {sd["id"]: compact_structure(sd, constraints) for sd in structures}
    primitives = {sd["id"]: primitive_info(sd) for sd in structures if sd["kind"] == "primitive-type"}
    value_sets, failed = expand_required(structures, terminology)
    return {
        "fhirVersion": "4.0.1",
        "constraints": constraints.rows,
        "primitives": primitives,
        "types": types,
        "valueSets": value_sets,
        "unexpandedValueSets": failed,
        "extensions": compact_extensions(load_bundle(core / "extension-definitions.json.gz")),
    }


# ---- terminology: displays, vital signs, common UCUM codes ------------------------------------------------

UCUM = "http://unitsofmeasure.org"
#: The R4 vital-signs profiles (https://hl7.org/fhir/R4/observation-vitalsigns.html, "Vital Signs" table and
#: each profile's differential): LOINC code of Observation.code -> (profile id, unit rule of valueQuantity.code:
#: ``["fixed", code]`` or ``["valueSet", url]``, or None for the panels). The blood pressure panel's rule is on
#: its systolic (8480-6) and diastolic (8462-4) components, in mm[Hg]. R4 says an Observation with one of these
#: codes SHALL conform to the profile, whether or not it claims it (observation-vitalsigns.html#vitals).
VITAL_SIGNS: dict[str, tuple[str, list[str] | None]] = {
    "85353-1": ("vitalspanel", None),
    "9279-1": ("resprate", ["fixed", "/min"]),
    "8867-4": ("heartrate", ["fixed", "/min"]),
    "2708-6": ("oxygensat", ["fixed", "%"]),
    "8310-5": ("bodytemp", ["valueSet", "http://hl7.org/fhir/ValueSet/ucum-bodytemp"]),
    "8302-2": ("bodyheight", ["valueSet", "http://hl7.org/fhir/ValueSet/ucum-bodylength"]),
    "9843-4": ("headcircum", ["valueSet", "http://hl7.org/fhir/ValueSet/ucum-bodylength"]),
    "29463-7": ("bodyweight", ["valueSet", "http://hl7.org/fhir/ValueSet/ucum-bodyweight"]),
    "39156-5": ("bmi", ["fixed", "kg/m2"]),
    "85354-9": ("bp", None),
}
BP_COMPONENTS = {"8480-6": ["fixed", "mm[Hg]"], "8462-4": ["fixed", "mm[Hg]"]}


def english(language: Any) -> bool:
    """A designation counts as a display when it has no language or an English one (the validator's default)."""
    return language is None or str(language) == "en" or str(language).startswith("en-")


def concept_displays(concept: Json) -> list[str]:
    names = [concept["display"]] if concept.get("display") else []
    names += [d["value"] for d in concept.get("designation", []) if english(d.get("language")) and d.get("value")]
    return names


def build_terminology(core: Path) -> Json:
    terminology = load_bundle(core / "valuesets.json.gz") + load_bundle(core / "v3-codesystems.json.gz")
    value_sets = {r["url"]: r for r in terminology if r["resourceType"] == "ValueSet"}
    displays = {
        cs["url"]: {c["code"]: concept_displays(c) for c in flatten(cs.get("concept", []))}
        for cs in sorted(terminology, key=lambda r: r["url"])
        if cs["resourceType"] == "CodeSystem" and cs.get("content") == "complete" and english(cs.get("language"))
    }
    unit_sets = {rule[1] for _, rule in VITAL_SIGNS.values() if rule and rule[0] == "valueSet"}
    units = {
        url: {
            "name": value_sets[url].get("title") or value_sets[url]["name"],
            "codes": sorted(codes_of(value_sets[url])),
        }
        for url in sorted(unit_sets)
    }
    vital_signs = {
        code: {"profile": CORE_SD + profile, "unit": rule} for code, (profile, rule) in sorted(VITAL_SIGNS.items())
    }
    vital_signs["85354-9"]["components"] = BP_COMPONENTS
    return {
        "fhirVersion": "4.0.1",
        "displays": displays,
        "vitalSigns": vital_signs,
        "unitValueSets": units,
        "ucumCommon": sorted(codes_of(value_sets["http://hl7.org/fhir/ValueSet/ucum-common"])),
    }


def codes_of(vs: Json) -> set[str]:
    """The UCUM codes a value set lists (the unit value sets list their concepts)."""
    return {c["code"] for inc in vs["compose"]["include"] if inc.get("system") == UCUM for c in inc.get("concept", [])}


def write(model: Json, out: Path) -> None:
    raw = json.dumps(model, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.getvalue())


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=repo.parent / "shared", help="the shared reference folder")
    parser.add_argument("--out", type=Path, default=repo / "src/escape_fhir/data/r4-model.json.gz")
    parser.add_argument("--terminology-out", type=Path, default=repo / "src/escape_fhir/data/r4-terminology.json.gz")
    args = parser.parse_args()
    write(build(args.shared / "fhir" / "r4-core"), args.out)
    write(build_terminology(args.shared / "fhir" / "r4-core"), args.terminology_out)


if __name__ == "__main__":
    main()
