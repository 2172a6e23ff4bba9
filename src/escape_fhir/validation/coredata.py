"""The R4 terminology facts shipped in ``escape_fhir/data/r4-terminology.json.gz``, read once on first use.

Written by ``scripts/generate_r4_model.py`` from the official R4 4.0.1 definitions: the displays of every code
system R4 holds whole (its own and HL7 terminology's), the vital-signs profiles selected by LOINC code, the
unit value sets they bind and the codes of ``ucum-common``. Kept apart from the structural model
(``r4-model.json.gz``) so that a validation that meets none of these codes never reads it.
"""

from __future__ import annotations

import functools
import gzip
from importlib import resources
from typing import Any, NamedTuple

import orjson

__all__ = ["CoreTerminology", "core_terminology"]

_DATA_FILE = "r4-terminology.json.gz"


class CoreTerminology(NamedTuple):
    #: system -> code -> the valid displays (the concept's display, then its English designations)
    displays: dict[str, dict[str, list[str]]]
    #: LOINC code -> {"profile": url, "unit": ["fixed", code] | ["valueSet", url] | None, "components": {...}}
    vital_signs: dict[str, dict[str, Any]]
    #: unit value set url -> {"name": name, "codes": [UCUM codes]}
    unit_value_sets: dict[str, dict[str, Any]]
    #: UCUM codes of the R4 ``ucum-common`` value set: valid UCUM, known without parsing
    ucum_common: frozenset[str]


@functools.cache
def core_terminology() -> CoreTerminology:
    data = orjson.loads(gzip.decompress(resources.files("escape_fhir").joinpath("data", _DATA_FILE).read_bytes()))
    return CoreTerminology(data["displays"], data["vitalSigns"], data["unitValueSets"], frozenset(data["ucumCommon"]))
