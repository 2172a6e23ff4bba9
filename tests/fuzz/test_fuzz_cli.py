"""Fuzzing the command line (issue 10): the same mutated Bundles and mangled bytes given to the commands that
read FHIR (``referral``, ``referral --explain``, ``validate``) through the real entry point, ``main()``.

Each must end with one of its documented exit codes (README, "The command line") and never print a traceback.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escape_fhir.cli import main
from tests.fuzz.strategies import mangled_bytes, mutated_bundle

#: The exit codes each command documents: 0 done, 1 cannot be mapped / has errors, 2 unreadable input.
DOCUMENTED = {"referral": {0, 1, 2}, "validate": {0, 1, 2}}
COMMANDS = [["referral"], ["referral", "--explain"], ["validate"]]


def run(argv: list[str]) -> tuple[int, str]:
    # Binary-backed, as a terminal's: the commands write bytes to sys.stdout.buffer and sys.stderr.buffer.
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    err.flush()
    return code, err.buffer.getvalue().decode("utf-8", "replace")  # type: ignore[attr-defined]


def check(folder: Path, data: bytes, suffix: str) -> None:
    path = folder / f"bundle{suffix}"
    path.write_bytes(data)
    for command in COMMANDS:
        code, err = run([*command, str(path)])
        assert code in DOCUMENTED[command[0]], (command, code, err[-500:])
        assert "Traceback" not in err, err[-2000:]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-cli")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutated_bundle())
def test_mutated_bundles_on_the_command_line(folder: Path, data: bytes) -> None:
    check(folder, data, ".json")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mangled_bytes())
def test_mangled_bytes_on_the_command_line(folder: Path, mangled: tuple[bytes, str]) -> None:
    data, fmt = mangled
    check(folder, data, ".xml" if "xml" in fmt else ".json")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], max_examples=20)
@given(st.sampled_from(sorted((Path(__file__).parents[1] / "fhir" / "senders").glob("*.*"))))
def test_every_sender_bundle_on_the_command_line(folder: Path, path: Path) -> None:
    if path.name.endswith(".expect.json") or path.suffix not in (".json", ".xml"):
        return
    check(folder, path.read_bytes(), path.suffix)
