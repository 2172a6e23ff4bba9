"""The reader compiled with mypyc (setup.py) reads every Bundle exactly as its plain-Python source does.

Where the compiled modules cannot be built, the package runs the same ``.py`` files as plain Python: both must
give the same referral, warnings, provenance and review flags, and refuse the same Bundles with the same issues.
The plain-Python run is a subprocess importing a copy of the package without its compiled files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import escape_fhir
from escape_fhir.fhir import readers

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = sorted(
    p
    for folder in (ROOT / "tests" / "fhir" / "senders", ROOT / "examples" / "bundles")
    for p in folder.glob("*")
    if p.suffix in (".json", ".xml") and not p.name.endswith(".expect.json")
)

#: Run in the subprocess: the same summary of each Bundle's reading, as JSON on stdout.
_SUMMARY = """
import json, sys
from pathlib import Path
from escape_fhir.errors import MappingError
from escape_fhir.fhir import readers
from escape_fhir.fhir.formats import parse
from escape_fhir.fhir.readers import read_referral

def summary(path):
    bundle = parse(path.read_bytes(), path.suffix.lstrip("."))
    try:
        got = read_referral(bundle)
    except MappingError as exc:
        return {"refused": [[i.code, i.message, i.location] for i in exc.issues]}
    return {
        "referral": got.referral.to_json_dict(),
        "warnings": [[w.severity, w.code, w.message, w.location] for w in got.warnings],
        "provenance": [[p.field, p.value, p.location, p.place] for p in got.provenance],
        "flags": [[f.criterion, f.reason] for f in got.flags],
    }

print(json.dumps({"module": readers.__file__, "bundles": {p: summary(Path(p)) for p in sys.argv[1:]}}))
"""


def _read_all(pythonpath: str | None) -> dict[str, Any]:
    """The summaries of every Bundle from a subprocess; ``pythonpath`` first on its path when given."""
    env = {"PATH": "/usr/bin:/bin"} | ({"PYTHONPATH": pythonpath} if pythonpath else {})
    run = subprocess.run(
        [sys.executable, "-c", _SUMMARY, *map(str, BUNDLES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_the_plain_python_reader_reads_every_bundle_as_the_compiled_one(tmp_path: Path) -> None:
    if readers.__file__.endswith(".py"):
        pytest.skip("the reader is not compiled here (no C compiler at setup, or ESCAPE_FHIR_PURE=1)")
    package = Path(escape_fhir.__file__).parent
    shutil.copytree(package, tmp_path / "escape_fhir", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    compiled, plain = _read_all(None), _read_all(str(tmp_path))
    assert compiled["module"].endswith(".so"), compiled["module"]
    assert plain["module"].endswith("readers.py"), plain["module"]  # the copy, not the compiled module
    assert len(BUNDLES) >= 40
    for path in BUNDLES:
        assert compiled["bundles"][str(path)] == plain["bundles"][str(path)], path.name
    assert sum("refused" in s for s in compiled["bundles"].values()) >= 2  # refusals are compared too


def test_the_compiled_reader_takes_its_list_and_str_method_paths() -> None:
    """Compiled, the places' finders are native functions returning lists (not generators), and the free-text
    scan and the programme prefilter are native functions: the paths the corpus comparison above checks."""
    from escape_fhir.fhir import bundle_index, sender_places, sender_terms

    if not sender_places.__file__.endswith(".so"):
        pytest.skip("the reader is not compiled here (no C compiler at setup, or ESCAPE_FHIR_PURE=1)")
    for function in (sender_terms.sites_in_text, sender_terms.programme_in, sender_places.sites_in_text):
        assert type(function).__name__ == "builtin_function_or_method", function
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p"}},
            {
                "resource": {
                    "resourceType": "ServiceRequest",
                    "subject": {"reference": "Patient/p"},
                    "note": [{"text": "Right knee pain"}],
                    "bodySite": [{"text": "left hip"}],
                }
            },
        ],
    }
    from escape_fhir.fhir.sender_context import Context

    ctx = Context.of(bundle)
    assert isinstance(ctx.sr.items("note"), list)
    for places in sender_places.PLACES.values():
        for place in places:
            assert isinstance(place.find(ctx), list), place.label
    assert bundle_index.Node.items.__class__.__name__ != "function"
    assert [f.location for f in sender_places.sites_in_text(ctx)] == [
        "Bundle.entry[1].resource.bodySite[0].text",
        "Bundle.entry[1].resource.note[0].text",
    ]
