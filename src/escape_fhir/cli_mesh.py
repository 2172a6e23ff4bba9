"""``escape-fhir mesh send|poll``: referral message Bundles through a MESH mailbox (nhs-standards.md 6.3).

Settings come from the ``ESCAPE_FHIR_MESH_*`` variables (URL, mailbox, password, shared key, client
certificate and key, CA bundle); ``poll`` also uses the database and FHIR package settings, and
``--database-url`` overrides the database. Output names messages by MESH ids, mailboxes and workflow ids,
never by anything of the patient.

Exit codes: 0 done (every polled message acknowledged); 1 ``poll`` left a message in the inbox, or MESH
refused the request; 2 bad input or settings; 3 MESH could not be reached or answered 408, 429 or 5xx
(try again later).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from escape_fhir.cli import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, _read, _Usage, load_definitions, load_settings
from escape_fhir.errors import MeshError

if TYPE_CHECKING:
    from escape_fhir.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(database_url=getattr(args, "database_url", None) or None)


def _failed(exc: MeshError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_UNAVAILABLE if exc.transient else EXIT_FAILED


def cmd_send(args: argparse.Namespace) -> int:
    """Send one message Bundle (JSON or XML, its bytes as they are); print the MESH message id."""
    from escape_fhir.fhir.formats import parse, sniff
    from escape_fhir.settings import SettingsError
    from escape_fhir.transport.mesh import MeshTransport

    data = _read(args.file)
    bundle = parse(data)
    if bundle.get("resourceType") != "Bundle" or not bundle.get("id"):
        raise _Usage(f"{args.file} is not a Bundle with an id (the id travels as Mex-LocalID)")
    try:
        with MeshTransport(_settings(args)) as mesh:
            message_id = mesh.send(
                bundle, args.to, args.workflow_id, fmt=sniff(data) or "json", subject=args.subject, data=data
            )
    except SettingsError as exc:
        raise _Usage(str(exc)) from None
    except MeshError as exc:
        return _failed(exc)
    print(message_id)
    return EXIT_OK


def cmd_poll(args: argparse.Namespace) -> int:
    """Process every inbox message through the endpoint's intake; one line per message."""
    from escape_fhir.service.mesh_intake import MeshIntake
    from escape_fhir.service.subscriptions import attach
    from escape_fhir.settings import SettingsError
    from escape_fhir.site_red_flags import load_red_flags
    from escape_fhir.storage import Database
    from escape_fhir.transport.mesh import MeshTransport
    from escape_fhir.validation.api import Validator

    settings = _settings(args)
    try:
        mesh = MeshTransport(settings)
    except SettingsError as exc:
        raise _Usage(str(exc)) from None
    with mesh:
        db = attach(Database.from_url(settings.database_url))
        try:
            if settings.migrate:
                db.migrate()
            validator = Validator(load_definitions(settings.packages))
            red_flags = load_red_flags(settings.red_flags) if settings.red_flags else None
            base = settings.base_url or f"http://{settings.host}:{settings.port}"
            handler = MeshIntake(db, validator, settings.mesh_dead_letter_dir, base, red_flags)
            mesh.handshake()  # authenticate before touching anything; MESH asks for one a day at least
            received = mesh.poll(handler, workflow_id=args.workflow_id)
        except MeshError as exc:
            return _failed(exc)
        finally:
            db.dispose()
    for r in received:
        state = "acknowledged" if r.acknowledged else "not acknowledged"
        print(f"{r.message_id} {r.handled.disposition} ({state}): {r.handled.detail}")
    return EXIT_OK if all(r.acknowledged for r in received) else EXIT_FAILED


def add_parser(sub: Any) -> None:
    mesh = sub.add_parser("mesh", help="send and receive referral messages through a MESH mailbox")
    commands = mesh.add_subparsers(dest="mesh_command", required=True, metavar="SUBCOMMAND")

    p = commands.add_parser("send", help="send a message Bundle to a MESH mailbox (prints the MESH message id)")
    p.add_argument("file", help="message Bundle, JSON or XML, or - for stdin")
    p.add_argument("--to", required=True, metavar="MAILBOX", help="recipient mailbox id")
    p.add_argument("--workflow-id", required=True, metavar="ID", help="workflow id agreed with the recipient")
    p.add_argument("--subject", help="Mex-Subject (never patient data)")
    p.set_defaults(func=cmd_send)

    p = commands.add_parser("poll", help="process and acknowledge the inbox's messages (one line per message)")
    p.add_argument("--database-url", help="SQLAlchemy URL (default from ESCAPE_FHIR_DATABASE_URL)")
    p.add_argument("--workflow-id", metavar="ID", help="only messages of this workflow")
    p.set_defaults(func=cmd_poll)
