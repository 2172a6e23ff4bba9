"""NHS number and ODS code checks, as a table of cases (cases_v2b/identifiers.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from escape_fhir.errors import Issue
from escape_fhir.validation.identifiers import check_identifier

CASES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "cases_v2b" / "identifiers.json").read_text())
LOCATION = "Patient.identifier[0]"


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in CASES])
def test_identifier(case: dict[str, Any]) -> None:
    identifier: dict[str, Any] = {k: case[k] for k in ("system", "value") if k in case}
    expected = [Issue(severity, code, message, f"{LOCATION}.value") for severity, code, message in case["issues"]]
    assert check_identifier(identifier, LOCATION) == expected
