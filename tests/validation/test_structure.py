"""Base R4 structure: unknown elements, JSON shape, primitive formats, cardinality, choice types, required
bindings, extensions, nested resources; one broken thing per case (cases/structure.json)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.validation.validator_cases import assert_issues, new_issues, table


@pytest.mark.parametrize("case", table("structure.json"))
def test_break_one_thing(case: dict[str, Any]) -> None:
    assert_issues(new_issues(case), case["expect"])
