"""``escape-fhir outbox ...``: queue referrals, run the outbox, list and re-queue its messages.

Settings come from the ``ESCAPE_FHIR_*`` variables (database, routes, ``OUTBOX_*``); ``--database-url``
overrides the database. Output names messages by ids only (outbox id, Bundle id, X-Request-ID), never by
anything of the patient.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from escape_fhir.cli import EXIT_FAILED, EXIT_OK, _read, _Usage, _write_json, load_settings
from escape_fhir.outbox_states import DEAD, PENDING, STATES

#: States ``outbox retry ID`` queues again (Outbox.retry): a dead message, or a pending one (attempts reset).
RETRYABLE = (DEAD, PENDING)

if TYPE_CHECKING:  # imported where used: SQLAlchemy and the settings cost ~1 s on every command's start
    from escape_fhir.settings import Settings
    from escape_fhir.storage import Database
    from escape_fhir.storage.outbox import OutboxMessage
    from escape_fhir.transport.mesh import MeshTransport


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(database_url=args.database_url or None)


def _database(settings: Settings) -> Database:
    from escape_fhir.service.subscriptions import attach
    from escape_fhir.storage import Database

    db = attach(Database.from_url(settings.database_url))
    if settings.migrate:
        db.migrate()
    return db


def cmd_enqueue(args: argparse.Namespace) -> int:
    from escape_fhir.service.outbound import enqueue_referral

    db = _database(_settings(args))
    queued = enqueue_referral(db, _read(args.file), args.to, args.correlation_id)
    _write_json(queued.__dict__)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from escape_fhir.api.logs import configure
    from escape_fhir.transport.config import load_client_settings
    from escape_fhir.transport.notify import RestHook
    from escape_fhir.transport.outbox import ClientTransport, Policy, Runner

    settings = _settings(args)
    client = load_client_settings(args.auth_config)
    configure(settings.log_level)
    policy = Policy(
        max_attempts=args.max_attempts or settings.outbox_max_attempts,
        backoff=settings.outbox_backoff_seconds,
        backoff_max=settings.outbox_backoff_max_seconds,
        lease=settings.outbox_lease_seconds,
    )
    transport = ClientTransport(token_provider=client.token_provider(), timeout=client.timeout)
    db = _database(settings)
    mesh = _mesh(settings)
    runner = Runner(db, transport, policy, settings.routes, notifier=RestHook(db), mesh=mesh)
    try:
        if args.once:
            report = runner.run_once()
            print(f"delivered {report.delivered}, to retry {report.retrying}, dead {report.dead}")
            return EXIT_OK
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        runner.run(stop, settings.outbox_poll_seconds)
    finally:
        transport.close()
        if mesh is not None:
            mesh.close()
    return EXIT_OK


def _mesh(settings: Settings) -> MeshTransport | None:
    """Our MESH mailbox, for the messages queued to a site's mailbox (hub mode), when ESCAPE_FHIR_MESH_URL
    is set; a mailbox that is not fully configured is a usage error naming the setting."""
    if not settings.mesh_url:
        return None
    from escape_fhir.settings import SettingsError
    from escape_fhir.transport.mesh import MeshTransport

    try:
        return MeshTransport(settings)
    except SettingsError as exc:
        raise _Usage(str(exc)) from None


def start_deliverer(settings: Settings) -> Callable[[], None]:
    """``serve --deliver``: the outbox runner (referral messages, responses and Subscription notifications) in
    a thread of the server's process, on its own engine; returns the function that stops it."""
    from escape_fhir.transport.notify import RestHook
    from escape_fhir.transport.outbox import ClientTransport, Policy, Runner

    policy = Policy(
        max_attempts=settings.outbox_max_attempts,
        backoff=settings.outbox_backoff_seconds,
        backoff_max=settings.outbox_backoff_max_seconds,
        lease=settings.outbox_lease_seconds,
    )
    db = _database(settings)
    transport = ClientTransport()
    runner = Runner(db, transport, policy, settings.routes, notifier=RestHook(db), mesh=_mesh(settings))
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop, settings.outbox_poll_seconds), name="outbox", daemon=True)
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join(30)
        transport.close()
        db.dispose()

    return finish


def _listed(message: OutboxMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "kind": message.kind,
        "state": message.state,
        "attempts": message.attempts,
        "next_attempt": message.next_attempt.isoformat() if message.state == "pending" else None,
        "destination": message.destination,
        "bundle_id": message.bundle_id,
        "request_id": message.request_id,
        "correlation_id": message.correlation_id,
        "last_status": message.last_status,
        "last_error": message.last_error,
        "delivered": message.delivered.isoformat() if message.delivered else None,
        "service_request_id": message.service_request_id,
        "receiver_reference": message.receiver_reference,
        "reply_status": message.reply_status,
    }


def cmd_list(args: argparse.Namespace) -> int:
    from escape_fhir.storage.outbox import Outbox

    with _database(_settings(args)).read() as repo:
        rows = [_listed(m) for m in Outbox(repo.session).listing(args.state or ())]
    if args.json:
        _write_json(rows)
        return EXIT_OK
    print(f"{'id':>5} {'kind':<8} {'state':<9} {'tries':>5}  {'last':<40} {'reply':<11} bundle")
    for row in rows:
        last = row["last_error"] or (f"HTTP {row['last_status']}" if row["last_status"] else "")
        reply = row["reply_status"] or ""
        print(
            f"{row['id']:>5} {row['kind']:<8} {row['state']:<9} {row['attempts']:>5}  {last[:40]:<40} {reply:<11} ",
            end="",
        )
        print(row["bundle_id"])
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    from escape_fhir.service.common import now
    from escape_fhir.storage.outbox import Outbox

    if not args.ids and not args.dead:
        raise _Usage("name the messages to retry (outbox ids) or --dead for every dead one")
    with _database(_settings(args)).write() as repo:
        outbox = Outbox(repo.session)
        refused = [problem for i in args.ids if (problem := _not_retryable(outbox, i))]
        count = outbox.retry(now(), args.ids, dead=args.dead)
    print(f"queued {count} message(s) again")
    for problem in refused:
        print(f"error: {problem}", file=sys.stderr)
    return EXIT_FAILED if refused else EXIT_OK


def _not_retryable(outbox: Any, message_id: int) -> str | None:
    """Why the message with this id cannot be queued again (none such, or delivered), or None."""
    message = outbox.get(message_id)
    if message is None:
        return f"no outbox message {message_id}"
    if message.state not in RETRYABLE:
        return f"outbox message {message_id} is {message.state}, not dead: nothing to retry"
    return None


def add_parser(sub: Any) -> None:
    """The ``outbox`` command and its subcommands, added to the main parser's subcommands."""
    outbox = sub.add_parser("outbox", help="queue referrals and deliver them (durable outbox)")
    commands = outbox.add_subparsers(dest="outbox_command", required=True, metavar="SUBCOMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = commands.add_parser(name, help=text)
        p.add_argument("--database-url", help="SQLAlchemy URL (default ESCAPE_FHIR_DATABASE_URL)")
        return p

    p = command("enqueue", "record a referral message we send and queue it (nothing is sent yet)")
    p.add_argument("file", help="message Bundle (JSON or XML), or - for stdin")
    p.add_argument("--to", required=True, metavar="URL_OR_ENDPOINT", help="receiver's base URL or system|value")
    p.add_argument("--correlation-id", help="X-Correlation-ID (default: the referral's earlier one, else new)")
    p.set_defaults(func=cmd_enqueue)

    p = command("run", "deliver queued messages with retries until stopped (SIGTERM/Ctrl-C)")
    p.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
    p.add_argument("--max-attempts", type=int, help="dead-letter after N attempts (ESCAPE_FHIR_OUTBOX_MAX_ATTEMPTS)")
    p.add_argument(
        "--auth-config",
        metavar="FILE",
        help="client settings JSON (token URL, API key, kid, private key; or a bearer token); "
        "default: ESCAPE_FHIR_CLIENT_* variables",
    )
    p.set_defaults(func=cmd_run)

    p = command("list", "show each message's state (ids only)")
    p.add_argument("--state", action="append", choices=STATES, help="only messages in this state (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = command("retry", "queue dead messages again (fresh attempts)")
    p.add_argument("ids", nargs="*", type=int, metavar="ID", help="outbox ids")
    p.add_argument("--dead", action="store_true", help="every dead message")
    p.set_defaults(func=cmd_retry)
