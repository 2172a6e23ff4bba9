"""The escape-fhir command: its output contracts and exit codes (0 ok, 1 cannot map, 2 bad input)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from escape_fhir.cli import main
from escape_fhir.domain.startback import ITEM_CODES
from escape_fhir.fhir.formats import dump, parse
from escape_fhir.fhir.questionnaires import startback_response
from tests.helpers import EXAMPLES

KNEE = str(EXAMPLES / "referrals/knee-gp.json")
SELF_LOW = str(EXAMPLES / "referrals/back-self-low.json")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_eligibility_text_names_the_decision_and_every_criterion(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "eligibility", SELF_LOW)
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "needs-review"
    assert len(lines) == 1 + 10  # ten back criteria
    assert any(line.split()[0] == "unknown" and "STarT Back risk" in line and "low risk" in line for line in lines)


def test_eligibility_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "eligibility", "--json", KNEE)
    result = json.loads(out)
    assert code == 0
    assert result["decision"] == "eligible"
    assert {c["outcome"] for c in result["criteria"]} == {"met"}
    assert result["criteria"][0] == {"code": "age", "title": "Age", "outcome": "met", "reason": "age 68 is 45 or over"}


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        pytest.param(["disagree"] * 8 + ["not-at-all"], {"total": 0, "psychosocial": 0, "risk": "low"}, id="all-no"),
        pytest.param(["agree"] * 4 + ["disagree"] * 4 + ["slightly"], {"total": 4, "psychosocial": 0, "risk": "medium"},
                     id="medium"),
        pytest.param(["agree"] * 8 + ["extremely"], {"total": 9, "psychosocial": 5, "risk": "high"}, id="all-yes"),
    ],
)  # fmt: skip
def test_score_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], answers: list[str], expected: dict[str, object]
) -> None:
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(dict(zip(ITEM_CODES, answers, strict=True))))
    code, out, _ = run(capsys, "score", str(path))
    assert code == 0
    assert json.loads(out) == expected


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_score_reads_a_questionnaire_response(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    answers = dict(zip(ITEM_CODES, itertools.islice(itertools.cycle(["agree", "disagree"]), 8), strict=False))
    answers["91348-3"] = "very-much"
    qr = startback_response(answers, id="qr1", subject="Patient/p1", author=None, authored="2026-11-26T10:00:00Z")
    path = tmp_path / f"qr.{fmt}"
    path.write_bytes(dump(qr, fmt))
    code, out, _ = run(capsys, "score", str(path))
    assert code == 0
    assert json.loads(out) == {"total": 5, "psychosocial": 3, "risk": "medium"}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param('{"91340-0": "agree"}', "91341-8: missing answer", id="missing item"),
        pytest.param(
            json.dumps(dict.fromkeys(ITEM_CODES, "agree")), "91348-3: unknown answer 'agree'", id="bad answer"
        ),
        pytest.param("{not json", "not valid JSON", id="malformed"),
        pytest.param("[1, 2]", "expected a JSON object", id="array"),
    ],
)
def test_score_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, fragment: str) -> None:
    path = tmp_path / "answers.json"
    path.write_text(content)
    code, out, err = run(capsys, "score", str(path))
    assert (code, out) == (2, "")
    assert fragment in err
    assert "Traceback" not in err


@pytest.mark.parametrize("bundle", ["message", "transaction", "collection"])
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_translate_then_read_back(tmp_path: Path, capsys: pytest.CaptureFixture[str], bundle: str, fmt: str) -> None:
    code, out, _ = run(
        capsys, "translate", KNEE, "--bundle", bundle, "--format", fmt, "--timestamp", "2026-11-26T10:00:00Z"
    )
    assert code == 0
    assert parse(out.encode(), fmt)["type"] == bundle
    path = tmp_path / f"bundle.{fmt}"
    path.write_text(out)
    code, out, _ = run(capsys, "referral", str(path))
    assert code == 0
    assert json.loads(out) == json.loads(Path(KNEE).read_text())


def test_translate_defaults_to_a_json_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "translate", KNEE)
    bundle = json.loads(out)
    assert (code, bundle["type"], bundle["entry"][0]["resource"]["resourceType"]) == (0, "message", "MessageHeader")


def test_referral_that_cannot_be_mapped_exits_1_with_an_operation_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}))
    code, out, err = run(capsys, "referral", str(path))
    outcome = json.loads(err)
    assert (code, out) == (1, "")
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Bundle.type"]


@pytest.mark.parametrize(
    ("argv", "content", "fragment"),
    [
        pytest.param(["translate"], '{"pathway": "knee-hip"}', "referralDate: Field required", id="invalid referral"),
        pytest.param(["eligibility"], "{", "not valid JSON", id="malformed referral"),
        pytest.param(["referral"], "<Bundle", "XML", id="malformed xml"),
        pytest.param(["referral"], '<!DOCTYPE x [<!ENTITY a "b">]><Bundle xmlns="http://hl7.org/fhir"/>', "DOCTYPE",
                     id="entity declaration refused"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], content: str, fragment: str
) -> None:
    path = tmp_path / "input"
    path.write_text(content)
    code, out, err = run(capsys, *argv, str(path))
    assert (code, out) == (2, "")
    assert fragment in err
    assert "Traceback" not in err


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "eligibility", "/nonexistent/referral.json")
    assert code == 2
    assert "cannot read /nonexistent/referral.json" in err


def test_installed_command_reads_stdin() -> None:
    """The real console entry point, as a user runs it, reading the referral from stdin."""
    proc = subprocess.run(
        [sys.executable, "-m", "escape_fhir.cli", "eligibility", "-"],
        input=Path(SELF_LOW).read_bytes(),
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines()[0] == "needs-review"


# --- clinical safety (issue 9): a site's red flags, a contradictory score -----------------------------------


def test_eligibility_uses_the_sites_red_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = tmp_path / "red-flags.csv"
    flags.write_text("code,display,pathway\n239873007,Knee OA (a site's test exclusion),knee-hip\n", encoding="utf-8")
    monkeypatch.setenv("ESCAPE_FHIR_RED_FLAGS", str(flags))
    code, out, _ = run(capsys, "eligibility", "--json", KNEE)
    result = json.loads(out)
    assert code == 0
    assert result["decision"] == "not-eligible"
    (red,) = [c for c in result["criteria"] if c["code"] == "red-flags"]
    assert red["outcome"] == "not-met"
    assert "239873007 Knee OA (a site's test exclusion) (found at diagnoses[0])" in red["reason"]


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        pytest.param("code,display,pathway\n239873008,typo,back\n", ".csv", "row 1.code", id="bad check digit"),
        pytest.param('{"code": "239873007"}', ".json", "expected a JSON list", id="JSON object, not a list"),
        pytest.param("239873007", ".txt", "must be a .csv or .json file", id="unknown file type"),
    ],
)
def test_a_bad_red_flag_list_exits_2_naming_the_row(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    content: str,
    suffix: str,
    message: str,
) -> None:
    flags = tmp_path / f"red-flags{suffix}"
    flags.write_text(content, encoding="utf-8")
    monkeypatch.setenv("ESCAPE_FHIR_RED_FLAGS", str(flags))
    code, out, err = run(capsys, "eligibility", KNEE)
    assert (code, out) == (2, "")
    assert err.startswith("error: invalid red-flag list")
    assert message in err
    assert "Traceback" not in err


def test_a_missing_red_flag_list_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCAPE_FHIR_RED_FLAGS", str(tmp_path / "absent.csv"))
    code, _, err = run(capsys, "eligibility", KNEE)
    assert code == 2
    assert "absent.csv: cannot read" in err


def test_a_contradictory_startback_result_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    referral = json.loads(Path(SELF_LOW).read_text(encoding="utf-8"))
    referral.pop("startBack", None)
    referral["startBackResult"] = {"total": 8, "psychosocial": 5, "risk": "medium"}
    path = tmp_path / "referral.json"
    path.write_text(json.dumps(referral), encoding="utf-8")
    for command in ("eligibility", "translate"):
        code, out, err = run(capsys, command, str(path))
        assert (code, out) == (2, "")
        assert "startBackResult.risk: medium does not follow from total 8 and psychosocial subscore 5" in err
