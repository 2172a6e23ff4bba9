"""Staff accounts of the pages: a JSON file of usernames, argon2 password hashes and the API's scopes.

``escape-fhir staff add`` writes it (owner-only, like the database: it names the people who may see patient
data); the pages read it at each sign-in, so an account added or removed takes effect without a restart.
Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106); a sign-in with an unknown username
still verifies a hash, so the time taken does not tell which usernames exist.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from escape_fhir.errors import InputError
from escape_fhir.settings import Scope

_HASHER = PasswordHasher()
#: Verified against when the username is unknown, so that a failed sign-in always costs one verification.
_DUMMY = _HASHER.hash("not a password of anyone")
USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
MIN_PASSWORD = 12


@dataclass(frozen=True)
class StaffMember:
    username: str
    name: str
    scopes: frozenset[Scope]


def _read(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        staff = data["staff"]
        assert isinstance(staff, list)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise InputError(f"the staff file {path} is not a staff list written by escape-fhir staff add") from None
    return [s for s in staff if isinstance(s, dict)]


def _member(entry: dict[str, object]) -> StaffMember:
    scopes = entry.get("scopes")
    known = {s.value for s in Scope}
    return StaffMember(
        str(entry.get("username")),
        str(entry.get("name") or entry.get("username")),
        frozenset(Scope(s) for s in scopes if s in known) if isinstance(scopes, list) else frozenset(),
    )


def authenticate(path: Path, username: str, password: str) -> StaffMember | None:
    """The staff member if ``password`` is theirs; None otherwise (unknown name or wrong password alike)."""
    entry = next((s for s in _read(path) if s.get("username") == username.strip().lower()), None)
    stored = str(entry.get("password_hash")) if entry else _DUMMY
    try:
        _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    return _member(entry) if entry else None


def member(path: Path, username: str) -> StaffMember | None:
    """The account as it is now (a removed account, or scopes taken away, end the session's rights)."""
    entry = next((s for s in _read(path) if s.get("username") == username), None)
    return _member(entry) if entry else None


def list_staff(path: Path) -> list[StaffMember]:
    return [_member(s) for s in _read(path)]


def add(path: Path, username: str, password: str, scopes: frozenset[Scope], name: str = "") -> bool:
    """Add the account, or replace its password, name and scopes; True when it was new."""
    username = username.strip().lower()
    if not USERNAME.fullmatch(username):
        raise InputError("a username is 1-64 lower-case letters, digits and . _ @ -, starting with a letter or digit")
    if len(password) < MIN_PASSWORD:
        raise InputError(f"a password needs at least {MIN_PASSWORD} characters")
    if not scopes:
        raise InputError("a staff account needs at least one scope (read, triage, validate, submit)")
    staff = [s for s in _read(path) if s.get("username") != username]
    new = len(staff) == len(_read(path))
    staff.append(
        {
            "username": username,
            "name": name.strip() or username,
            "password_hash": _HASHER.hash(password),
            "scopes": sorted(s.value for s in scopes),
        }
    )
    _write_private(path, json.dumps({"staff": staff}, indent=2).encode("utf-8"))
    return new


def remove(path: Path, username: str) -> bool:
    staff = _read(path)
    kept = [s for s in staff if s.get("username") != username.strip().lower()]
    if len(kept) != len(staff):
        _write_private(path, json.dumps({"staff": kept}, indent=2).encode("utf-8"))
    return len(kept) != len(staff)


def _write_private(path: Path, data: bytes) -> None:
    """Write owner-only (0600) through a temporary file renamed over the old one: a crash leaves either."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
