"""Every generated file in the repository is current, and every example is what its referral translates to."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.helpers import ROOT


def _generator() -> object:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "scripts/generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FILES: dict[Path, bytes] = _generator().generated_files(ROOT)  # type: ignore[attr-defined]


@pytest.mark.parametrize("rel", sorted(FILES), ids=str)
def test_file_is_current(rel: Path) -> None:
    path = ROOT / rel
    assert path.exists(), f"{rel} is missing: run python scripts/generate.py"
    assert path.read_bytes() == FILES[rel], f"{rel} is stale: run python scripts/generate.py"


def test_every_example_referral_has_its_bundles() -> None:
    referrals = sorted(p.stem for p in (ROOT / "examples/referrals").glob("*.json"))
    assert len(referrals) == 5
    for stem in referrals:
        for fmt in ("json", "xml"):
            assert Path(f"examples/bundles/{stem}.message.{fmt}") in FILES
