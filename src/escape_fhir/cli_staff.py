"""``escape-fhir staff add|list|remove``: the staff accounts of the pages (``pages/staff.py``), in the file
of ``ESCAPE_FHIR_STAFF_FILE`` or ``--staff-file``. The password is read from the terminal (asked twice) or,
with ``--password-stdin``, from the first line of stdin; it is never an argument (``ps`` would show it)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from escape_fhir.cli import EXIT_FAILED, EXIT_OK, _Usage, load_settings

SCOPES = ("read", "triage", "validate", "submit")


def _file(args: argparse.Namespace) -> Path:
    return Path(args.staff_file) if args.staff_file else load_settings().staff_file


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise _Usage("no terminal to ask the password on: use --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        raise _Usage("the two passwords differ")
    return first


def cmd_add(args: argparse.Namespace) -> int:
    from escape_fhir.pages import staff
    from escape_fhir.settings import Scope

    path = _file(args)
    staff.list_staff(path)  # a file that is not a staff list is refused before the password is asked
    new = staff.add(path, args.username, _password(args), frozenset(Scope(s) for s in args.scope), args.name or "")
    print(f"{'added' if new else 'updated'} {args.username.strip().lower()} in {path}", file=sys.stderr)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from escape_fhir.pages import staff

    for member in staff.list_staff(_file(args)):
        print(f"{member.username}\t{member.name}\t{','.join(sorted(s.value for s in member.scopes))}")
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    from escape_fhir.pages import staff

    if not staff.remove(_file(args), args.username):
        print(f"error: no staff account {args.username}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """The ``staff`` command and its subcommands."""
    parser = sub.add_parser("staff", help="staff accounts that sign in to the pages (triage worklist, figures)")
    commands = parser.add_subparsers(dest="staff_command", required=True, metavar="SUBCOMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = commands.add_parser(name, help=text)
        p.add_argument("--staff-file", help="the accounts file (default ESCAPE_FHIR_STAFF_FILE, var/staff.json)")
        return p

    p = command("add", "add an account, or set its password, name and scopes")
    p.add_argument("username")
    p.add_argument("--scope", action="append", required=True, choices=SCOPES, help="repeatable: the API's scopes")
    p.add_argument("--name", help="the name shown on the pages and in triage notes")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(func=cmd_add)

    p = command("list", "one line per account: username, name, scopes")
    p.set_defaults(func=cmd_list)

    p = command("remove", "remove an account (its sessions end at their next request)")
    p.add_argument("username")
    p.set_defaults(func=cmd_remove)
