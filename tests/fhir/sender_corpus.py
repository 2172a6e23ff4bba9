"""The sender corpus (tests/fhir/senders): referral Bundles shaped the way NHS systems send them, and what each must
give. The acceptance corpus of the reader (issue 8); what the files are and where their codes come from is in
tests/fhir/senders/README.md.

Each ``<name>.json`` or ``<name>.xml`` has a ``<name>.expect.json`` beside it:

* ``family``, ``description``, ``shapes`` (tags from :data:`SHAPES`);
* ``facts``: referral input-format fields by dotted path (``patient.nhsNumber``) that the reader must find, plus
  ``symptomOnsetDate``; ``where``: for some facts, the FHIRPath prefix (with indices) they must be read from;
* ``criteria``: the eligibility outcome (``met``/``not-met``/``unknown``) of the criteria the shapes decide;
* ``warnings``: FHIRPath prefixes of elements present but not understood, each of which must be reported;
* or ``refused: true`` (no facts): not an ESCAPE-pain referral at all.

Use :func:`cases` (accepted Bundles) and :func:`refused` in tests of the reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from escape_fhir.fhir.formats import parse

FOLDER = Path(__file__).parent / "senders"
Json = dict[str, Any]

FAMILIES = (
    "gp-system",
    "hospital-epr",
    "msk-triage",
    "integration-engine",
    "healthshare",
    "e-rs",
    "physio-system",
    "self-referral-portal",
    "ours",
)
SHAPES = (
    "condition-bodysite",
    "sr-bodysite",
    "code-implies-site",
    "text-only-site",
    "reasoncode",
    "contained-condition",
    "programme-in-text",
    "startback-panel",
    "startback-observations",
    "startback-qr-sender-linkids",
    "source-extension",
    "requester-snomed-role",
    "requester-sds-role",
    "requester-organization",
    "bare-practitioner",
    "conditional-ref",
    "identifier-ref",
    "onset-datetime",
    "onset-age",
    "onset-period",
    "onset-string",
    "conflict",
    "missing-detail",
    "not-understood",
    "ours",
)
EXPECT_KEYS = {"family", "description", "shapes", "facts", "where", "criteria", "warnings"}
REFUSED_KEYS = {"family", "description", "shapes", "refused"}


@dataclass(frozen=True)
class Case:
    name: str
    path: Path  # the Bundle, .json or .xml
    expect: Json

    @property
    def format(self) -> str:
        return self.path.suffix.lstrip(".")

    def bundle(self) -> Json:
        return parse(self.path.read_bytes())


@cache
def _all() -> tuple[Case, ...]:
    out = []
    for expect_path in sorted(FOLDER.glob("*.expect.json")):
        name = expect_path.name.removesuffix(".expect.json")
        found = [p for p in (FOLDER / f"{name}.json", FOLDER / f"{name}.xml") if p.exists()]
        if len(found) != 1:
            raise FileNotFoundError(
                f"{expect_path.name}: expected exactly one {name}.json or {name}.xml, found {found}"
            )
        out.append(Case(name, found[0], json.loads(expect_path.read_text())))
    return tuple(out)


def cases() -> list[Case]:
    """The Bundles the reader must accept, with their expectations."""
    return [c for c in _all() if not c.expect.get("refused")]


def refused() -> list[Case]:
    """The Bundles the reader must refuse (not an ESCAPE-pain referral)."""
    return [c for c in _all() if c.expect.get("refused")]


def bundle_files() -> list[Path]:
    """Every Bundle file in the folder, whether or not it has an expectation file."""
    return sorted(p for p in FOLDER.iterdir() if p.suffix in (".json", ".xml") and not p.name.endswith(".expect.json"))
