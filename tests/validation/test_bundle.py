"""Bundle-wide rules: break one thing in a copy of the knee referral message (cases_v2b/bundle.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from escape_fhir.errors import Issue
from escape_fhir.validation.bundle import check_bundle
from tests.helpers import EXAMPLES
from tests.validation.edits_v2b import apply_edits

CASES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "cases_v2b" / "bundle.json").read_text())
BUNDLES = sorted((EXAMPLES / "bundles").glob("*.json"))


@pytest.fixture(scope="module")
def knee() -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads((EXAMPLES / "bundles" / "knee-gp.message.json").read_text())
    return bundle


@pytest.mark.parametrize("path", BUNDLES, ids=[p.name for p in BUNDLES])
def test_example_bundles_pass(path: Path) -> None:
    assert check_bundle(json.loads(path.read_text())) == []


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in CASES])
def test_break_one_thing(knee: dict[str, Any], case: dict[str, Any]) -> None:
    bundle = apply_edits(knee, case["edits"])
    if "issues_per_entry" in case:
        severity, code, message = case["issues_per_entry"]
        expected = [Issue(severity, code, message, f"Bundle.entry[{i}]") for i in range(len(bundle["entry"]))]
    else:
        expected = [Issue(*row) for row in case["issues"]]
    assert check_bundle(bundle) == expected


def test_base_prefixes_locations(knee: dict[str, Any]) -> None:
    bundle = apply_edits(knee, [["set", "entry.1.resource.subject.reference", "urn:uuid:x"]])
    [issue] = check_bundle(bundle, base="Parameters.parameter[0].resource")
    assert issue.location == "Parameters.parameter[0].resource.entry[1].resource.subject.reference"


def test_nested_bundle_references_are_not_followed(knee: dict[str, Any]) -> None:
    inner = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Basic", "subject": {"reference": "urn:uuid:nowhere"}}}],
    }
    bundle = apply_edits(
        knee, [["append", "entry", {"fullUrl": "urn:uuid:33333333-3333-3333-3333-333333333333", "resource": inner}]]
    )
    assert check_bundle(bundle) == []


def test_empty_message_bundle() -> None:
    issue = Issue("error", "invalid", "the first entry of a message Bundle must be a MessageHeader", "Bundle.entry")
    assert check_bundle({"resourceType": "Bundle", "type": "message"}) == [issue]


def test_transaction_post_may_lack_full_url() -> None:
    entry = {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}
    assert check_bundle({"resourceType": "Bundle", "type": "transaction", "entry": [entry]}) == []
