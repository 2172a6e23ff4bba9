"""Every command's exit codes are the README's, through the installed ``escape-fhir`` command in a process of
its own, with good, bad and hostile input and settings; whatever happens, stderr never holds a traceback.

The table is data: arguments (``{tmp}`` is a folder of prepared inputs, ``{examples}`` the repository's
examples, ``{busy}`` a port another socket listens on), extra environment, the expected code and a fragment
of stderr. Codes (cli.py): 0 done; 1 read, but the answer is a failure; 2 unusable input or settings;
3 something needed is unavailable; 70 an internal error.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from escape_fhir.cli import EXIT_INTERNAL
from escape_fhir.domain.startback import ITEM_CODES
from tests.helpers import EXAMPLES

COMMAND = Path(sys.executable).parent / "escape-fhir"
DEPTH = 1000  # issue 10: JSON nested ~1,000 deep made the readers raise RecursionError


class Row(NamedTuple):
    argv: tuple[str, ...]
    code: int
    stderr: str = ""  # a fragment stderr must hold
    env: tuple[tuple[str, str], ...] = ()


def row(argv: str, code: int, stderr: str = "", **env: str) -> Row:
    return Row(tuple(argv.split()), code, stderr, tuple(env.items()))


KNEE = "{examples}/referrals/knee-gp.json"
MESSAGE = "{examples}/bundles/knee-gp.message.json"
MESSAGE_XML = "{examples}/bundles/knee-gp.message.xml"
SQLITE = "--database-url sqlite:///{tmp}/outbox.sqlite3"
NOBODY = "postgresql+psycopg://postgres@127.0.0.1:1/none"  # nothing listens on port 1
SITES = "{examples}/sites/directory/sites.csv"

ROWS = {
    # eligibility, score, translate, referral, schema: 0 ok; 1 cannot be mapped; 2 bad input
    "eligibility ok": row(f"eligibility {KNEE}", 0),
    "eligibility invalid referral": row("eligibility {tmp}/invalid-referral.json", 2, "referralDate"),
    "eligibility missing file": row("eligibility {tmp}/absent.json", 2, "cannot read"),
    "eligibility deep JSON": row("eligibility {tmp}/deep.json", 2, "error: "),
    "score ok": row("score {tmp}/answers.json", 0),
    "score missing item": row("score {tmp}/one-answer.json", 2, "missing answer"),
    "score deep JSON": row("score {tmp}/deep.json", 2, "error: "),
    "translate ok": row(f"translate {KNEE} --timestamp 2026-11-26T10:00:00Z", 0),
    "translate date as timestamp": row(f"translate {KNEE} --timestamp 2026-11-20", 2, "not a FHIR instant"),
    "translate impossible date": row(f"translate {KNEE} --timestamp 2026-02-30T10:00:00Z", 2, "not a FHIR instant"),
    "translate invalid referral": row("translate {tmp}/invalid-referral.json", 2, "referralDate"),
    "translate deep JSON": row("translate {tmp}/deep.json", 2, "error: "),
    "referral ok": row(f"referral {MESSAGE_XML}", 0),
    "referral cannot be mapped": row("referral {tmp}/searchset.json", 1, "Bundle.type"),
    "referral malformed": row("referral {tmp}/malformed.xml", 2, "malformed XML"),
    "referral entity declaration": row("referral {tmp}/doctype.xml", 2, "DOCTYPE"),
    "referral deep JSON": row("referral {tmp}/deep.json", 2, "nested deeper than"),
    "referral deep XML": row("referral {tmp}/deep.xml", 2, "error: "),
    "schema": row("schema", 0),
    # validate: 0 no errors; 1 errors; 2 unreadable (files, packages)
    # staff: 0 done; 1 no such account; 2 a file that is not a staff list (the password is never asked first)
    "staff list, no file yet": row("staff list --staff-file {tmp}/no-staff.json", 0),
    "staff remove unknown": row("staff remove nobody --staff-file {tmp}/no-staff.json", 1, "no staff account"),
    "staff list junk file": row("staff list --staff-file {tmp}/junk.bin", 2, "not a staff list"),
    "staff add junk file": row("staff add a --scope read --staff-file {tmp}/junk.bin", 2, "not a staff list"),
    "validate ok": row(f"validate {MESSAGE} {MESSAGE_XML}", 0),
    "validate JSON unknown element": row("validate {tmp}/colour.json", 1),
    "validate XML unknown element": row("validate {tmp}/colour.xml", 1),
    "validate a folder": row("validate {tmp}/folder", 1),
    "validate a folder of nothing": row("validate {tmp}/empty", 2, "no .json or .xml files"),
    "validate junk package": row(f"validate --package {{tmp}}/junk.bin {MESSAGE}", 2, "junk.bin not found"),
    "validate corrupt .tgz package": row(f"validate --package {{tmp}}/junk.tgz {MESSAGE}", 2, "cannot be read"),
    "validate missing package": row(f"validate --package {{tmp}}/absent {MESSAGE}", 2, "cannot read package"),
    "validate deep JSON": row("validate {tmp}/deep.json", 2, "nested deeper than"),
    "validate malformed": row("validate {tmp}/malformed.xml", 2, "malformed XML"),
    # serve: 2 bad settings; 3 cannot listen (port in use)
    "serve unknown database": row("serve --database-url nonsense://x", 2, "database_url"),
    "serve not a URL": row("serve --database-url nonsense", 2, "database_url"),
    "serve tokens not JSON": row("serve", 2, "tokens", ESCAPE_FHIR_TOKENS="notjson"),
    "serve placeholder token": row("serve", 2, "tokens", ESCAPE_FHIR_TOKENS='{"changeme": ["read"]}'),
    "serve issuers not JSON": row("serve", 2, "jwt_issuers", ESCAPE_FHIR_JWT_ISSUERS="[{"),
    "serve port not a number": row("serve", 2, "port", ESCAPE_FHIR_PORT="eighty"),
    "serve missing package": row("serve --package /nonexistent", 2, "/nonexistent not found"),
    "serve missing package (variable)": row(
        "serve", 2, "/nonexistent not found", ESCAPE_FHIR_PACKAGES='["/nonexistent"]'
    ),
    "serve workers zero": row("serve --workers 0", 2, "workers"),
    "serve port out of range": row("serve --port 70000", 2, "port"),
    "serve open on a public address": row("serve --host 0.0.0.0", 2, "refusing to serve"),
    "serve workers on SQLite": row("serve --workers 2", 2, "needs PostgreSQL"),
    "serve port in use": row("serve --port {busy}", 3, "in use"),
    # send: 2 bad input or settings; 3 unavailable
    "send not a message": row("send {tmp}/colour.json --to http://127.0.0.1:1 --ods A1", 2, "not a message Bundle"),
    "send no sender ODS code": row(f"send {MESSAGE} --to http://127.0.0.1:1", 2, "ODS code"),
    "send receiver down": row(
        f"send {MESSAGE} --to http://127.0.0.1:1 --ods A1", 3, "error: ", ESCAPE_FHIR_CLIENT_MAX_ATTEMPTS="1"
    ),
    # outbox: 0; 1 a message that is not there to retry; 2 bad input; 3 database unreachable
    "outbox list": row(f"outbox list {SQLITE}", 0),
    "outbox run once": row(f"outbox run --once {SQLITE}", 0),
    "outbox enqueue not a message": row(f"outbox enqueue {KNEE} --to http://127.0.0.1:1 {SQLITE}", 2),
    "outbox retry nothing named": row(f"outbox retry {SQLITE}", 2, "name the messages"),
    "outbox retry unknown id": row(f"outbox retry 99 {SQLITE}", 1, "no outbox message 99"),
    "outbox bad database URL": row("outbox list --database-url nonsense://x", 2, "database_url"),
    "outbox database unreachable": row(f"outbox list --database-url {NOBODY}", 3, "cannot be reached"),
    # mesh: 2 bad input or settings
    "mesh send without settings": row(f"mesh send {MESSAGE} --to X26ABC1 --workflow-id W", 2, "ESCAPE_FHIR_MESH_URL"),
    "mesh poll without settings": row(f"mesh poll {SQLITE}", 2, "ESCAPE_FHIR_MESH_URL"),
    # package build: 0 written; 2 the folder cannot be made or written
    "package build": row("package build --out {tmp}/built", 0),
    "package build into a file": row("package build --out {tmp}/answers.json", 2, "cannot write the package"),
    "package without action": row("package", 2, "usage"),
    # sites: 0; 1 an id not in the directory; 2 a bad directory file (nothing imported); 3 database unreachable
    "sites import ok": row(f"sites import {SITES} {SQLITE}", 0),
    "sites import bad rows": row(f"sites import {{tmp}}/bad-sites.csv {SQLITE}", 2, "row 2 (x).postcode"),
    "sites import not a directory": row(f"sites import {KNEE} {SQLITE}", 2, "expected a JSON list"),
    "sites list": row(f"sites list --programme back --postcode LS61AA {SQLITE}", 0),
    "sites list bad postcode": row(f"sites list --postcode nowhere {SQLITE}", 2, "--postcode"),
    "sites show unknown": row(f"sites show nobody {SQLITE}", 1, "no site 'nobody'"),
    "sites database unreachable": row(f"sites list --database-url {NOBODY}", 3, "cannot be reached"),
    # route: 0 routed; 1 no site takes it, or no postcode to route by; 2 unreadable referral or directory
    "route ok": row(f"route {MESSAGE} --sites {SITES}", 0),
    "route referral JSON": row(f"route {KNEE} --sites {SITES} --json", 0),
    "route no site": row(f"route {{tmp}}/far-referral.json --sites {SITES}", 1),
    "route no postcode": row(f"route {{tmp}}/no-postcode.json --sites {SITES}", 1, "patient.address.postcode"),
    "route invalid referral": row(f"route {{tmp}}/invalid-referral.json --sites {SITES}", 2, "referralDate"),
    "route deep JSON": row(f"route {{tmp}}/deep.json --sites {SITES}", 2, "error: "),
    "route bad directory": row(f"route {KNEE} --sites {{tmp}}/bad-sites.csv", 2, "row 2 (x).postcode"),
    "route database unreachable": row(f"route {KNEE} --database-url {NOBODY}", 3, "cannot be reached"),
    # usage errors (argparse)
    "no command": row("", 2, "usage"),
    "unknown option": row("eligibility --nope x", 2, "usage"),
}


def _deep_json(depth: int) -> str:
    return '{"resourceType": "Bundle", "type": "message", "x": ' + "[" * depth + "]" * depth + "}"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prepared inputs, one folder for the module."""
    tmp = tmp_path_factory.mktemp("cli-inputs")
    answers = dict(zip(ITEM_CODES, ["agree"] * 4 + ["disagree"] * 4 + ["slightly"], strict=True))
    colour = {"resourceType": "Patient", "colour": "red"}
    knee = json.loads((EXAMPLES / "referrals/knee-gp.json").read_text())
    far = {**knee, "patient": {**knee["patient"], "address": {**knee["patient"]["address"], "postcode": "M1 1AE"}}}
    unplaced = {**knee, "patient": {k: v for k, v in knee["patient"].items() if k != "address"}}
    files = {
        "invalid-referral.json": json.dumps({"pathway": "knee-hip"}),
        "answers.json": json.dumps(answers),
        "one-answer.json": json.dumps({"91340-0": "agree"}),
        "searchset.json": json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []}),
        "malformed.xml": '<Patient xmlns="http://hl7.org/fhir"><id value="x"/>',
        "doctype.xml": '<!DOCTYPE x [<!ENTITY a "b">]><Bundle xmlns="http://hl7.org/fhir"/>',
        "deep.json": _deep_json(DEPTH),
        "deep.xml": '<Bundle xmlns="http://hl7.org/fhir">' + '<extension url="u">' * DEPTH
        + "</extension>" * DEPTH + "</Bundle>",
        "colour.json": json.dumps(colour),
        "colour.xml": '<Patient xmlns="http://hl7.org/fhir"><colour value="red"/></Patient>',
        "folder/good/message.json": (EXAMPLES / "bundles/knee-gp.message.json").read_text(),
        "folder/bad/colour.xml": '<Patient xmlns="http://hl7.org/fhir"><colour value="red"/></Patient>',
        "folder/notes.txt": "not FHIR: not read",
        "empty/notes.txt": "no resources here",
        "bad-sites.csv": "id,name,programme,ods_code,organisation,postcode,covers,sources,referral_phone\n"
        "x,X,back,RXX,Org,nowhere,LS6,gp,0113 496 0000\n",
        "far-referral.json": json.dumps(far),
        "no-postcode.json": json.dumps(unplaced),
    }  # fmt: skip
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    (tmp / "junk.bin").write_bytes(bytes(range(256)))
    (tmp / "junk.tgz").write_bytes(bytes(range(256)))
    return tmp


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    """A loopback port another socket listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def escape_fhir(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command as a user runs it; no ESCAPE_FHIR_* from the developer's shell."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ESCAPE_FHIR_")}
    command = [str(COMMAND)] if COMMAND.exists() else [sys.executable, "-m", "escape_fhir.cli"]
    return subprocess.run(
        command + argv, cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("case", ROWS.values(), ids=ROWS.keys())
def test_exit_code(case: Row, inputs: Path, busy_port: int, tmp_path: Path) -> None:
    values = {"tmp": str(inputs), "examples": str(EXAMPLES), "busy": str(busy_port)}
    argv = [arg.format(**values) for arg in case.argv]
    done = escape_fhir(argv, cwd=tmp_path, env=dict(case.env))
    assert done.returncode == case.code, done.stderr
    assert "Traceback" not in done.stderr
    assert case.stderr in done.stderr
    if case.code != 0:
        assert (done.stderr + done.stdout).strip(), "a failure must say why"


def test_validate_a_folder_reports_each_file(inputs: Path, tmp_path: Path) -> None:
    """``validate DIR`` reads the folder's .json and .xml files recursively, in order, one result each."""
    done = escape_fhir(["validate", str(inputs / "folder")], cwd=tmp_path)
    lines = done.stdout.splitlines()
    bad, good = inputs / "folder/bad/colour.xml", inputs / "folder/good/message.json"
    assert done.returncode == 1
    assert f"{bad}: error Patient.colour: unknown element 'colour'" in lines
    assert all(line.startswith((f"{bad}: ", f"{good}: ")) for line in lines)
    assert any(line.startswith(f"{good}: ") for line in lines)


def test_xml_and_json_unknown_elements_are_both_error_issues(inputs: Path, tmp_path: Path) -> None:
    for name in ("colour.json", "colour.xml"):
        done = escape_fhir(["validate", "--json", str(inputs / name)], cwd=tmp_path)
        outcome = json.loads(done.stdout)
        assert done.returncode == 1
        errors = [(i["code"], i["expression"]) for i in outcome["issue"] if i["severity"] == "error"]
        assert errors == [("structure", ["Patient.colour"])]


def test_corrupt_package_inside_a_tgz_name_is_refused(tmp_path: Path) -> None:
    """A .tgz that is a tar but holds a package.json that is not JSON: refused too, not skipped."""
    tgz = tmp_path / "broken.tgz"
    member = tmp_path / "package.json"
    member.write_text("{not json")
    with tarfile.open(tgz, "w:gz") as archive:
        archive.add(member, arcname="package/package.json")
    done = escape_fhir(["validate", "--package", str(tgz), str(EXAMPLES / "bundles/knee-gp.message.json")], tmp_path)
    assert (done.returncode, "Traceback" in done.stderr) == (2, False)
    assert "broken.tgz cannot be read" in done.stderr


BUG = "import sys\nimport escape_fhir.cli as cli\ncli.cmd_schema = lambda args: 1 / 0\nsys.exit(cli.main(['schema']))\n"


@pytest.mark.parametrize(("debug", "traceback"), [("", False), ("1", True)])
def test_an_internal_error_is_one_line_and_exit_70(tmp_path: Path, debug: str, traceback: bool) -> None:
    """The last resort: a bug (here a command that divides by zero) is one line naming the error's type and
    exit 70; ESCAPE_FHIR_DEBUG=1 adds the traceback for a developer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCAPE_FHIR_")} | {"ESCAPE_FHIR_DEBUG": debug}
    done = subprocess.run([sys.executable, "-c", BUG], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == EXIT_INTERNAL
    assert ("Traceback" in done.stderr) is traceback
    assert done.stderr.strip().splitlines()[-1].startswith("error: internal error (ZeroDivisionError)")
