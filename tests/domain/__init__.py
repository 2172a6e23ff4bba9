"""Tests of the ESCAPE-pain domain: STarT Back scoring, eligibility rules and the referral input format.

Cases live as data in ``cases/*.json`` (STYLE.md habit 5): adding a case is adding a row. A case names a
base document and the one thing it changes (habit 3), as dotted paths:

* ``"set": {"patient.birthDate": "1980-03-11"}`` replaces (or adds) a value;
* ``"unset": ["referrer"]`` removes a key.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

CASES_DIR = Path(__file__).parent / "cases"


def load_table(name: str) -> Any:
    """A case table from ``cases/<name>``."""
    return json.loads((CASES_DIR / name).read_text(encoding="utf-8"))


def _parent(doc: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    *parents, last = path.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    return doc, last


def changed(base: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with the case's ``set`` and ``unset`` applied."""
    doc = copy.deepcopy(base)
    for path in case.get("unset", []):
        parent, key = _parent(doc, path)
        if key not in parent:
            raise KeyError(f"case {case.get('id')!r}: nothing to unset at {path!r}")
        del parent[key]
    for path, value in case.get("set", {}).items():
        parent, key = _parent(doc, path)
        parent[key] = copy.deepcopy(value)
    return doc
