"""Staff accounts (``pages/staff.py``) as ``escape-fhir staff add`` writes them: argon2id hashes in an
owner-only file, never the password; replacing an account keeps one entry."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from escape_fhir.errors import InputError
from escape_fhir.pages import staff
from escape_fhir.settings import Scope

PASSWORD = "correct horse battery staple"


def test_accounts_are_argon2id_hashes_in_an_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "var" / "staff.json"
    assert staff.add(path, "Nurse", PASSWORD, frozenset({Scope.READ, Scope.TRIAGE}), "Sam Nurse")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert PASSWORD not in text
    entry = json.loads(text)["staff"][0]
    assert entry["username"] == "nurse" and entry["password_hash"].startswith("$argon2id$")
    member = staff.authenticate(path, " NURSE ", PASSWORD)
    assert member == staff.StaffMember("nurse", "Sam Nurse", frozenset({Scope.READ, Scope.TRIAGE}))
    assert staff.authenticate(path, "nurse", PASSWORD + "x") is None
    assert staff.authenticate(path, "nobody", PASSWORD) is None


def test_adding_again_replaces_the_password_and_scopes(tmp_path: Path) -> None:
    path = tmp_path / "staff.json"
    staff.add(path, "nurse", PASSWORD, frozenset({Scope.READ}))
    assert not staff.add(path, "nurse", "another long password", frozenset({Scope.VALIDATE}))
    assert [m.scopes for m in staff.list_staff(path)] == [frozenset({Scope.VALIDATE})]
    assert staff.authenticate(path, "nurse", PASSWORD) is None


@pytest.mark.parametrize(
    ("username", "password", "scopes", "message"),
    [
        ("nurse", "short", {Scope.READ}, "at least 12 characters"),
        ("../etc", PASSWORD, {Scope.READ}, "a username is"),
        ("nurse", PASSWORD, set(), "at least one scope"),
    ],
)
def test_bad_accounts_are_refused(
    tmp_path: Path, username: str, password: str, scopes: set[Scope], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        staff.add(tmp_path / "staff.json", username, password, frozenset(scopes))
    assert not (tmp_path / "staff.json").exists()
