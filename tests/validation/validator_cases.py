"""Break-one-thing cases for the instance validator, as data (cases/structure.json, cases/profiles.json).

A case names a valid base resource, edits it (the ``[op, path, value]`` rows of
:mod:`tests.validation.edits_v2b`) and lists exactly the issues the edit adds: each row is
``[severity, code, location, message fragment]``. Issues the unedited resource already has (warnings such as
``dom-6``) are not counted, so a case states only what its one change causes.

Bases: ``knee-gp`` (the knee referral message Bundle), ``knee-gp/N`` (the resource of its entry N),
``example:FILE`` (examples/resources), ``test:FILE`` (cases/profiles). Definitions: the project's own,
the test profiles in cases/profiles and, when ../shared is present, UK Core; cases marked
``"needs": "ukcore"`` are skipped without it.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import pytest

from escape_fhir.errors import Issue
from escape_fhir.fhir.formats import parse
from escape_fhir.validation.api import Validator
from escape_fhir.validation.definitions import default_definitions
from tests.helpers import EXAMPLES, SHARED
from tests.validation.edits_v2b import apply_edits

CASES = Path(__file__).parent / "cases"
TEST_PROFILES = CASES / "profiles"
UKCORE = SHARED / "fhir" / "ukcore"
Json = dict[str, Any]


@functools.cache
def validator() -> Validator:
    """One validator for every case: project profiles, test profiles, UK Core when present."""
    packages = [str(TEST_PROFILES)] + ([str(UKCORE)] if UKCORE.is_dir() else [])
    return Validator(default_definitions(packages, package_cache=False))


def table(name: str) -> list[Any]:
    """The cases of one table as pytest params, with their ids."""
    cases = json.loads((CASES / name).read_text())["cases"]
    return [pytest.param(case, id=case["id"]) for case in cases]


@functools.cache
def _knee() -> Json:
    return parse((EXAMPLES / "bundles" / "knee-gp.message.json").read_bytes())


def base_resource(spec: str) -> Json:
    """A deep copy of the base a case edits."""
    kind, _, rest = spec.partition(":")
    if spec.startswith("knee-gp"):
        _, _, entry = spec.partition("/")
        found = _knee()["entry"][int(entry)]["resource"] if entry else _knee()
    elif kind == "example":
        found = parse((EXAMPLES / "resources" / rest).read_bytes())
    elif kind == "test":
        found = parse((TEST_PROFILES / rest).read_bytes())
    else:
        raise ValueError(f"unknown base {spec!r}")
    return copy.deepcopy(found)


def _pick(resource: Json, path: str | None) -> Json:
    node: Any = resource
    for part in path.split(".") if path else ():
        node = node[int(part)] if isinstance(node, list) else node[part]
    return dict(node)


def new_issues(case: Json) -> list[Issue]:
    """The issues the case's edits add to those of its unedited base."""
    if case.get("needs") == "ukcore" and not UKCORE.is_dir():
        pytest.skip("UK Core definitions (../shared/fhir/ukcore) are not present")
    original = base_resource(case["base"])
    broken = _pick(apply_edits(original, case["edits"]), case.get("resource"))
    original = _pick(original, case.get("resource"))
    profiles = case.get("profiles", [])
    before = validator().validate(original, [] if case.get("compare_to_unprofiled") else profiles).issues
    after = validator().validate(broken, profiles).issues
    return [issue for issue in after if issue not in before]


def assert_issues(found: list[Issue], expected: list[list[str]]) -> None:
    """Exactly the expected issues: severity, code and location equal, the message containing the fragment."""
    unmatched = list(found)
    for severity, code, location, fragment in expected:
        match = next(
            (
                i
                for i in unmatched
                if (i.severity, i.code, i.location) == (severity, code, location) and fragment in i.message
            ),
            None,
        )
        assert match is not None, f"no {severity} {code} at {location} with {fragment!r} in {found}"
        unmatched.remove(match)
    assert not unmatched, f"unexpected issues: {unmatched}"
