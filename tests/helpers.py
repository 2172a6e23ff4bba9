"""Shared test helpers: repository paths and the reference data beside the repository.

The reference data is ``../shared`` (developer and CI machines), or the folder named by
``ESCAPE_FHIR_SHARED``; CI runs the tests that read it a second time with that variable naming a folder that
does not exist, as on a fresh clone, where they must skip saying why. Every test finds it through here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def fhir_examples(*suffixes: str) -> list[Path]:
    """The example files that are FHIR resources: not the referral input files (examples/referrals) nor the
    site directory spreadsheets (examples/sites/directory)."""
    return sorted(
        p for p in EXAMPLES.rglob("*") if p.suffix in suffixes and p.parent.name not in ("referrals", "directory")
    )


REFERRAL_EXAMPLES = sorted((EXAMPLES / "referrals").glob("*.json"))
SHARED = Path(os.environ.get("ESCAPE_FHIR_SHARED") or ROOT.parent / "shared")


def _absent(path: Path) -> str:
    return f"reference data {path} is not present (../shared exists only on developer and CI machines)"


def shared(*parts: str) -> Path:
    """A path in ../shared, or skip the test where the reference data is not present (call it in a test or a
    fixture, never at collection time: use :func:`shared_files` in ``parametrize``)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(_absent(path))
    return path


def shared_files(*parts: str) -> list[Any]:
    """For ``parametrize``: the files of a folder in ../shared, sorted; where it is absent, one parameter
    that is skipped with the reason, so that collection goes on."""
    folder = SHARED.joinpath(*parts)
    if not folder.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=_absent(folder)), id="no-shared")]
    return sorted(folder.iterdir())
