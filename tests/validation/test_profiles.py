"""Profiles along the baseDefinition chain: cardinality, fixed/pattern, slicing (value, pattern, exists, type,
profile; closed, ordered), extension slices, bindings; one broken thing per case (cases/profiles.json)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.validation.validator_cases import assert_issues, new_issues, table


@pytest.mark.parametrize("case", table("profiles.json"))
def test_break_one_thing(case: dict[str, Any]) -> None:
    assert_issues(new_issues(case), case["expect"])
