"""The shipped R4 terminology facts (displays, vital signs, common UCUM codes) match their generator."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from escape_fhir.validation.coredata import core_terminology
from tests.helpers import SHARED

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "src" / "escape_fhir" / "data" / "r4-terminology.json.gz"


def test_facts_read_from_the_shipped_file() -> None:
    terms = core_terminology()
    assert terms.displays["http://hl7.org/fhir/administrative-gender"]["female"] == ["Female"]
    assert terms.vital_signs["8867-4"]["unit"] == ["fixed", "/min"]
    assert terms.unit_value_sets["http://hl7.org/fhir/ValueSet/ucum-bodylength"]["codes"] == ["[in_i]", "cm"]
    assert "mg/dL" in terms.ucum_common and len(terms.ucum_common) > 1000
    assert DATA.stat().st_size < 300_000


@pytest.mark.skipif(not (SHARED / "fhir" / "r4-core").is_dir(), reason=f"{SHARED}/fhir/r4-core not present")
def test_committed_terminology_matches_generator(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate_r4_model", REPO / "scripts" / "generate_r4_model.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    sys.modules["generate_r4_model"] = generator
    spec.loader.exec_module(generator)
    out = tmp_path / "terminology.json.gz"
    generator.write(generator.build_terminology(SHARED / "fhir" / "r4-core"), out)
    assert out.read_bytes() == DATA.read_bytes()
