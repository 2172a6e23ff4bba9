"""``escape-fhir validate``: one line per issue or an OperationOutcome, exit 0 (no errors), 1 (errors),
2 (input it cannot read at all), packages from a folder or a .tgz, explicit profiles."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from escape_fhir.cli import main
from tests.helpers import EXAMPLES, shared

KNEE = str(EXAMPLES / "bundles/knee-gp.message.json")
KNEE_XML = str(EXAMPLES / "bundles/knee-gp.message.xml")
TEST_PROFILES = Path(__file__).parent / "validation" / "cases" / "profiles"
NAMED = "http://example.org/fhir/StructureDefinition/test-patient-named"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "patient.json"
    path.write_text(json.dumps({"resourceType": "Patient", "gender": "f", "colour": "red"}))
    return path


def test_valid_files_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, KNEE, KNEE_XML)
    assert code == 0
    assert all(line.split(": ", 1)[1].split()[0] in ("warning", "information", "ok") for line in out.splitlines())


def test_errors_one_line_each_exit_1(capsys: pytest.CaptureFixture[str], broken: Path) -> None:
    code, out, _ = run(capsys, str(broken))
    assert code == 1
    lines = out.splitlines()
    assert "error Patient.colour: unknown element 'colour'" in lines
    assert any(line.startswith("error Patient.gender: 'f' is not in value set") for line in lines)


def test_several_files_prefix_each_line_with_the_file(capsys: pytest.CaptureFixture[str], broken: Path) -> None:
    code, out, _ = run(capsys, KNEE, str(broken))
    assert code == 1
    assert f"{broken}: error Patient.colour: unknown element 'colour'" in out.splitlines()


def test_json_is_an_operation_outcome(capsys: pytest.CaptureFixture[str], broken: Path) -> None:
    code, out, _ = run(capsys, "--json", str(broken))
    outcome = json.loads(out)
    assert code == 1
    assert outcome["resourceType"] == "OperationOutcome"
    assert {
        "severity": "error",
        "code": "structure",
        "diagnostics": "unknown element 'colour'",
        "expression": ["Patient.colour"],
    } in outcome["issue"]


def test_json_for_several_files_is_a_bundle_of_outcomes(capsys: pytest.CaptureFixture[str], broken: Path) -> None:
    code, out, _ = run(capsys, "--json", KNEE, str(broken))
    bundle = json.loads(out)
    assert code == 1
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["OperationOutcome", "OperationOutcome"]
    assert bundle["entry"][1]["fullUrl"] == broken.resolve().as_uri()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "cannot read", id="missing-file"),
        pytest.param(b'<Patient xmlns="http://hl7.org/fhir"><id value="x"/>', "malformed XML", id="malformed-xml"),
        pytest.param(b'{"resourceType": "Patient",', "", id="malformed-json"),
        pytest.param(b"[1, 2]", "neither FHIR JSON nor FHIR XML", id="not-a-resource"),
        pytest.param(b'<!DOCTYPE x [<!ENTITY e "x">]><Patient xmlns="http://hl7.org/fhir"/>', "", id="unsafe-xml"),
    ],
)
def test_unreadable_input_exits_2_without_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "input"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run(capsys, str(path))
    assert code == 2
    assert err.startswith(f"error: {path}: ") and message in err
    assert "Traceback" not in err and out == ""


def test_unreadable_and_valid_files_together_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, KNEE, str(tmp_path / "absent.json"))
    assert code == 2
    assert out.startswith(f"{KNEE}: ")
    assert "absent.json" in err


def test_missing_package_exits_2(capsys: pytest.CaptureFixture[str], broken: Path) -> None:
    code, _, err = run(capsys, "--package", "/no/such/package", str(broken))
    assert code == 2
    assert err.strip() == "error: cannot read package /no/such/package: no such folder or .tgz file"


def test_explicit_profile_from_a_package_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "patient.json"
    path.write_text(json.dumps({"resourceType": "Patient", "gender": "female"}))
    code, out, _ = run(capsys, "--package", str(TEST_PROFILES), "--profile", NAMED, str(path))
    assert code == 1
    assert "error Patient.name: minimum required = 1, but only found 0" in out.splitlines()


def test_package_as_tgz(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tgz = tmp_path / "test-profiles.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        for file in TEST_PROFILES.glob("StructureDefinition-*.json"):
            archive.add(file, arcname=f"package/{file.name}")
    path = tmp_path / "patient.json"
    path.write_text(json.dumps({"resourceType": "Patient", "name": [{"family": "Smith"}]}))
    code, out, _ = run(capsys, "--package", str(tgz), "--profile", NAMED, str(path))
    assert code == 0, out


def test_unknown_explicit_profile_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "patient.json"
    path.write_text(json.dumps({"resourceType": "Patient", "gender": "female"}))
    code, out, _ = run(capsys, "--profile", "https://example.org/nobody", str(path))
    assert code == 1
    assert out.splitlines()[0] == "error Patient: profile https://example.org/nobody is unknown, so it was not checked"


def test_uk_core_package_folder(capsys: pytest.CaptureFixture[str]) -> None:
    ukcore = shared("fhir", "ukcore")
    code, out, _ = run(capsys, "--package", str(ukcore), KNEE)
    assert code == 0
    assert "is unknown" not in out


def test_validate_in_a_fresh_process_loads_nothing_heavy() -> None:
    """Cold start stays well under 1 s (bench/validate.py measures it) because ``validate`` imports neither
    the web stack, the database layer, the R4B models nor the FHIRPath engine for an example that needs none:
    checked by what is imported, not by a clock."""
    heavy = ("fastapi", "uvicorn", "sqlalchemy", "fhir.resources", "fhirpathpy", "requests")
    script = (
        "import sys\n"
        "from escape_fhir.cli import main\n"
        f"code = main(['validate', {KNEE!r}])\n"
        f"loaded = sorted(m for m in sys.modules if m.startswith({heavy!r}))\n"
        "print('LOADED', loaded, 'EXIT', code, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False, text=True)
    assert "LOADED [] EXIT 0" in done.stderr, done.stderr


def test_validate_our_package_folder_skips_its_package_json(capsys: pytest.CaptureFixture[str]) -> None:
    """``validate profiles/`` checks the package's resources, not its manifest (package.json is no resource)."""
    code, out, err = run(capsys, str(EXAMPLES.parent / "profiles"))
    assert code == 0, err
    assert "Questionnaire-startback.json" in out and "package.json" not in out + err
