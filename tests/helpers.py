"""Shared test helpers: repository paths and the reference data beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
REFERRAL_EXAMPLES = sorted((EXAMPLES / "referrals").glob("*.json"))
SHARED = ROOT.parent / "shared"


def shared(*parts: str) -> Path:
    """A path in ../shared, or skip the test where the reference data is not present."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data {path} is not present (../shared exists only on developer and CI machines)")
    return path
