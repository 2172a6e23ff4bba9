"""The ``escape-fhir`` command: thin commands over the library.

Exit codes: 0 success; 1 the input was read but the answer is a failure (a Bundle that cannot be mapped
to a referral, a resource with validation errors, an outbox message that is not there to retry); 2 input
that cannot be used at all (unreadable file, malformed or too deeply nested JSON/XML, invalid referral,
missing STarT Back answers, a package that cannot be read) or a usage error or bad settings; 3 something
we depend on is unavailable (``serve``: the port is in use or the address cannot be bound; a database
that cannot be reached); 70 an internal error (a bug: ``EX_SOFTWARE`` of sysexits.h), reported as one line
(``ESCAPE_FHIR_DEBUG=1`` adds the traceback). Errors go to stderr as one readable line each, never a
traceback.

``send`` has its own codes: 0 delivered (also when the receiver already had the message: 409 duplicate);
1 refused (the receiver's 4xx, or a 5xx with an OperationOutcome, or the token endpoint refused the signed
JWT); 2 bad input (unreadable file, not a message Bundle, bad URL or client settings); 3 unavailable (408,
429, 503, connection or communication failures after every attempt, or the token endpoint unreachable):
send again later with the same ``--request-id``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from escape_fhir import __version__
from escape_fhir.errors import EscapeFhirError, FhirFormatError, InputError, MappingError

if TYPE_CHECKING:
    from escape_fhir.settings import Settings
    from escape_fhir.validation.api import Validator
    from escape_fhir.validation.definitions import Definitions
    from escape_fhir.validation.result import ValidationResult

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3
#: An error that is ours, not the input's (sysexits.h EX_SOFTWARE): one line, never a traceback.
EXIT_INTERNAL = 70
#: Set (to anything but empty or 0) to print the traceback of an internal error after its line.
DEBUG_VARIABLE = "ESCAPE_FHIR_DEBUG"


class _Usage(InputError):
    """A command line that cannot be carried out."""


class _Unavailable(EscapeFhirError):
    """Something the command needs is not available now (a port in use, a database that does not answer)."""


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _Usage(f"cannot read {path}: {exc.strerror or exc}") from None


def _write_json(obj: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")


def cmd_eligibility(args: argparse.Namespace) -> int:
    from escape_fhir.domain import assess, load_referral
    from escape_fhir.site_red_flags import red_flags_from_env

    # The site's own red flags (ESCAPE_FHIR_RED_FLAGS) are read before the referral, so a bad list is
    # reported even for a good referral.
    red_flags = red_flags_from_env()
    result = assess(load_referral(_read(args.file)), red_flags=red_flags)
    if args.json:
        _write_json(result.as_dict())
        return EXIT_OK
    lines = [result.decision.value]
    width = max(len(c.title) for c in result.criteria)
    lines += [f"  {c.outcome.value:<8} {c.title:<{width}}  {c.reason}" for c in result.criteria]
    print("\n".join(lines))
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from escape_fhir.domain import score
    from escape_fhir.domain.startback import parse_answers

    data = _read(args.file)
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<") or b'"resourceType"' in stripped[:4096]:
        answers = _answers_from_response(data)
    else:
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise _Usage(f"not valid JSON: {exc}") from None
        answers = parse_answers(raw)
    _write_json(score(answers).as_dict())
    return EXIT_OK


def _answers_from_response(data: bytes) -> dict[str, str]:
    from escape_fhir.domain.startback import parse_answers
    from escape_fhir.fhir.formats import parse
    from escape_fhir.fhir.questionnaires import read_startback_response

    resource = parse(data)
    if resource.get("resourceType") != "QuestionnaireResponse":
        raise _Usage(f"expected answers or a QuestionnaireResponse, got a {resource.get('resourceType')}")
    got = read_startback_response(resource)
    return parse_answers(got.answers or {})


def cmd_translate(args: argparse.Namespace) -> int:
    from escape_fhir.domain import load_referral
    from escape_fhir.fhir.bundles import translate
    from escape_fhir.fhir.formats import dump

    referral = load_referral(_read(args.file))
    bundle = translate(referral, args.bundle, reason=args.reason, timestamp=args.timestamp, check=True)
    sys.stdout.buffer.write(dump(bundle, args.format, pretty=True) + b"\n")
    return EXIT_OK


def cmd_referral(args: argparse.Namespace) -> int:
    from escape_fhir.fhir.formats import parse
    from escape_fhir.fhir.outcome import operation_outcome
    from escape_fhir.fhir.readers import read_referral

    bundle = parse(_read(args.file))
    try:
        result = read_referral(bundle)
    except MappingError as exc:
        sys.stderr.buffer.write(orjson.dumps(operation_outcome(exc.issues), option=orjson.OPT_INDENT_2) + b"\n")
        return EXIT_FAILED
    except (TypeError, AttributeError, ValueError, KeyError, IndexError):
        # The reader takes valid FHIR (the endpoint validates before reading): say what is not valid, where.
        from escape_fhir.validation.api import Validator
        from escape_fhir.validation.definitions import default_definitions

        errors = Validator(default_definitions([])).validate(bundle).errors
        if not errors:
            raise  # valid FHIR the reader cannot take is a bug of ours: exit 70 (main)
        sys.stderr.buffer.write(orjson.dumps(operation_outcome(errors), option=orjson.OPT_INDENT_2) + b"\n")
        return EXIT_FAILED
    for warning in result.warnings:
        print(f"warning: {warning.location}: {warning.message}", file=sys.stderr)
    if args.explain:
        _explain(result)
    else:
        _write_json(result.referral.to_json_dict())
    return EXIT_OK


def _explain(result: Any) -> None:
    """Each fact beside where it was read; the criteria flagged for review; the decision (issue 8)."""
    from escape_fhir.fhir.readers import assess_read

    width = max((len(p.field) for p in result.provenance), default=10) + 2
    value_width = min(max((len(p.value) for p in result.provenance), default=10), 40) + 2
    for p in result.provenance:
        via = f"  ({p.place})" if p.place else ""
        print(f"{p.field:<{width}}{p.value:<{value_width}}{p.location}{via}")
    for flag in result.flags:
        print(f"review {flag.criterion}: {flag.reason}")
    decision = assess_read(result)
    print(f"decision: {decision.decision.value}")
    for c in decision.criteria:
        print(f"  {c.outcome.value:<8} {c.title}: {c.reason}")


def cmd_schema(args: argparse.Namespace) -> int:
    from escape_fhir.domain import referral_json_schema

    _write_json(referral_json_schema())
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate FHIR files and folders: one line per issue (or an OperationOutcome with --json); exit 0/1/2."""
    from escape_fhir.validation.api import Validator

    validator = Validator(load_definitions([_package(p) for p in args.package]))
    files = _validation_files(args.paths)
    results, unreadable = [], False
    for path in files:
        try:
            results.append((path, _validate_file(validator, path, args.profile)))
        except InputError as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            unreadable = True
    if args.json:
        outcomes = [(path, result.outcome()) for path, result in results]
        _write_json(outcomes[0][1] if len(files) == 1 and outcomes else _outcome_bundle(outcomes))
    else:
        for path, result in results:
            prefix = f"{path}: " if len(files) > 1 else ""
            print("\n".join(f"{prefix}{i.severity} {i.location}: {i.message}" for i in result.issues) or f"{prefix}ok")
    if unreadable:
        return EXIT_INPUT
    return EXIT_FAILED if any(not result.ok for _, result in results) else EXIT_OK


#: What ``validate DIR`` reads in a folder (recursively), as FHIR validators do.
_RESOURCE_SUFFIXES = (".json", ".xml")
#: A FHIR package's own files, which are not resources (FHIR package spec: package.json, .index.json).
_PACKAGE_FILES = frozenset({"package.json", ".index.json"})


def _validation_files(paths: Sequence[str]) -> list[str]:
    """The files to validate: each path as given, a folder replaced by its JSON and XML files (sorted,
    recursive, hidden folders and files and a package's ``package.json`` skipped); a folder with none is a
    usage error."""
    files: list[str] = []
    for path in paths:
        folder = Path(path)
        if path == "-" or not folder.is_dir():
            files.append(path)
            continue
        found = sorted(
            str(f)
            for f in folder.rglob("*")
            if f.suffix.lower() in _RESOURCE_SUFFIXES
            and f.is_file()
            and f.name not in _PACKAGE_FILES
            and not any(part.startswith(".") for part in f.relative_to(folder).parts)
        )
        if not found:
            raise _Usage(f"{path}: a folder with no .json or .xml files")
        files += found
    return files


def _validate_file(validator: Validator, path: str, profiles: list[str]) -> ValidationResult:
    """One file's result. FHIR XML that is well-formed but has an element or attribute FHIR does not define,
    or elements out of definition order, gives an error issue at each one's location, as the same in JSON
    does; other XML the reader cannot map is one error issue at its location; XML or JSON that cannot be
    read at all raises InputError (exit 2)."""
    from escape_fhir.errors import Issue
    from escape_fhir.fhir.formats import parse, sniff
    from escape_fhir.validation.result import ValidationResult

    data = _read(path)
    reading: list[Issue] = []
    try:
        resource = parse(data, issues=reading)
    except FhirFormatError as exc:
        if sniff(data) == "xml" and exc.location:
            message = str(exc).removeprefix(f"{exc.location}: ")
            return ValidationResult([*reading, Issue("error", "structure", message, exc.location)])
        raise
    except RecursionError:
        raise _Usage(_TOO_DEEP) from None
    try:
        return ValidationResult([*reading, *validator.validate(resource, profiles).issues])
    except RecursionError:
        raise _Usage(f"{_TOO_DEEP} to validate") from None


_TOO_DEEP = "the content is nested too deeply"


def _package(spec: str) -> str:
    """A ``--package``: a folder, a ``.tgz`` or ``name#version`` in the FHIR package cache."""
    if "#" not in spec and not Path(spec).exists():
        raise _Usage(f"cannot read package {spec}: no such folder or .tgz file")
    return spec


def load_definitions(packages: Sequence[str]) -> Definitions:
    """The validator's definitions with ``packages``; a package that cannot be found or read is a usage error
    (exit 2), never skipped in silence."""
    from escape_fhir.validation.definitions import default_definitions, package_errors

    definitions = default_definitions(packages)
    errors = package_errors(definitions)
    if errors:
        raise _Usage("; ".join(errors))
    return definitions


def _outcome_bundle(outcomes: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Several files: a collection Bundle with one OperationOutcome per file, its fullUrl the file's URI."""
    entries = [{"fullUrl": Path(path).resolve().as_uri(), "resource": oo} for path, oo in outcomes]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def load_settings(**given: Any) -> Settings:
    """The settings from ``ESCAPE_FHIR_*`` and the options given (None: not given); any that cannot be used
    is a usage error naming the setting, never echoing its value (it may be a token or a password)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError as SourceError

    from escape_fhir.settings import Settings

    try:
        return Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        problems = (f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        raise _Usage("; ".join(problems)) from None
    except SourceError as exc:  # an ESCAPE_FHIR_* variable that is not the JSON its setting needs
        cause = exc.__cause__
        detail = f": {type(cause).__name__}" if cause is not None else ""
        raise _Usage(f"{exc}{detail} (a list or object setting is JSON)") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from escape_fhir.api import create_app
    from escape_fhir.api.logs import configure
    from escape_fhir.settings import SettingsError

    given = {"host": args.host, "port": args.port, "database_url": args.database_url, "packages": args.package}
    settings = load_settings(**given, workers=args.workers, hub=True if args.hub else None)
    try:
        configure(settings.log_level)
        app = create_app(settings)  # also for --workers: settings, packages and migrations checked once, here
    except SettingsError as exc:
        raise _Usage(str(exc)) from None
    _check_port(settings.host, settings.port)
    from escape_fhir.cli_outbox import start_deliverer

    stop_deliverer = start_deliverer(settings) if args.deliver else None
    try:
        if settings.workers == 1:
            return _run_uvicorn(app, settings)
        app.state.db.dispose()
        os.environ.update(worker_environment(settings))
        return _run_uvicorn("escape_fhir.api.app:app_from_environment", settings, factory=True)
    finally:
        if stop_deliverer is not None:
            stop_deliverer()


def worker_environment(settings: Settings) -> dict[str, str]:
    """What a ``--workers`` process needs to build the same app: uvicorn starts each worker afresh, and it
    reads its settings from the environment, so the options given on the command line go there too."""
    return {
        "ESCAPE_FHIR_HOST": settings.host,
        "ESCAPE_FHIR_PORT": str(settings.port),
        "ESCAPE_FHIR_DATABASE_URL": settings.database_url,
        "ESCAPE_FHIR_PACKAGES": orjson.dumps(settings.packages).decode(),
        "ESCAPE_FHIR_MIGRATE": "false",  # done once, above, before any worker starts
        "ESCAPE_FHIR_WORKERS": "1",
        "ESCAPE_FHIR_HUB": "true" if settings.hub else "false",
    }


def _run_uvicorn(app: Any, settings: Settings, *, factory: bool = False) -> int:
    import uvicorn

    workers = settings.workers if factory else None
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            workers=workers,
            factory=factory,
            access_log=False,
            log_level=settings.log_level.lower(),
        )
    except SystemExit as exc:  # uvicorn logs why (e.g. the address cannot be bound), then exits 1
        if exc.code not in (None, 0):
            raise _Unavailable(f"the server could not start on {settings.host}:{settings.port}") from None
    return EXIT_OK


def _check_port(host: str, port: int) -> None:
    """Refuse (exit 3) before starting when the address cannot be bound, e.g. the port is in use: uvicorn
    would log it and exit 1, which reads like a refused request. Bound as uvicorn binds it (IPv6 when the host
    has a colon, else IPv4; SO_REUSEADDR); a host name that does not resolve is a usage error (exit 2)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except socket.gaierror as exc:
            raise _Usage(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        except OSError as exc:
            raise _Unavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def cmd_send(args: argparse.Namespace) -> int:
    """Send one message Bundle to a receiver's $process-message; the answer on stdout, a status line on stderr."""
    from escape_fhir.errors import DeliveryError
    from escape_fhir.fhir.formats import parse, sniff
    from escape_fhir.transport import Client, RetryPolicy
    from escape_fhir.transport.config import load_client_settings

    data = _read(args.file)
    bundle = parse(data)
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "message":
        raise _Usage(f"{args.file} is not a message Bundle (BaRS sends Bundles of type message)")
    config = load_client_settings(args.auth_config)
    sender = config.sender(ods_code=args.ods or "", org_name=args.org_name or "", target_service_id=args.target or "")
    client = Client(
        args.to,
        sender=sender,
        token_provider=config.token_provider(),
        retry=RetryPolicy(max_attempts=config.max_attempts),
        fmt=args.format or sniff(data) or "json",
        timeout=config.timeout,
    )
    with client:
        try:
            delivery = client.send_message(bundle, request_id=args.request_id, correlation_id=args.correlation_id)
        except DeliveryError as exc:
            return _not_delivered(exc)
    if delivery.body is not None:
        _write_json(delivery.body)
    state = "already delivered (409 duplicate)" if delivery.duplicate else f"delivered (HTTP {delivery.status})"
    ids = f"X-Request-ID {delivery.request_id}, X-Correlation-ID {delivery.correlation_id}"
    print(f"{state}: {ids}, {delivery.attempts} attempt(s)", file=sys.stderr)
    return EXIT_OK


def _not_delivered(exc: EscapeFhirError) -> int:
    """The receiver's OperationOutcome (if any) on stdout, one line on stderr; 1 refused, 3 try again later."""
    from escape_fhir.errors import AuthError, ReceiverRejected

    outcome = getattr(exc, "outcome", None)
    if outcome:
        _write_json(outcome)
    request_id = getattr(exc, "request_id", "")
    print(f"error: {exc}" + (f" (X-Request-ID {request_id})" if request_id else ""), file=sys.stderr)
    refused = isinstance(exc, ReceiverRejected) or (isinstance(exc, AuthError) and not exc.transient)
    return EXIT_FAILED if refused else EXIT_UNAVAILABLE


def _instant(value: str) -> str:
    """A FHIR instant (https://hl7.org/fhir/R4/datatypes.html#instant): date, time to the second and zone,
    a real date and time (the type's regex alone accepts 2026-02-30)."""
    from datetime import datetime

    from escape_fhir.fhir.r4model import model

    info = model().primitive("instant")
    try:
        ok = info is not None and info.matches(value) and datetime.fromisoformat(value) is not None
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a FHIR instant (date, time and zone, e.g. 2026-11-26T10:00:00Z)"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="escape-fhir", description="FHIR R4 adapter for ESCAPE-pain referrals")
    parser.add_argument("--version", action="version", version=f"escape-fhir {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("eligibility", help="check a referral's eligibility and explain every criterion")
    p.add_argument("file", help="referral JSON file, or - for stdin")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_eligibility)

    p = sub.add_parser("score", help="score STarT Back answers (JSON by LOINC code) or a QuestionnaireResponse")
    p.add_argument("file", help="answers JSON or QuestionnaireResponse (JSON/XML), or - for stdin")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("translate", help="translate a referral into a FHIR Bundle")
    p.add_argument("file", help="referral JSON file, or - for stdin")
    p.add_argument("--bundle", choices=["message", "transaction", "collection"], default="message")
    p.add_argument("--format", choices=["json", "xml"], default="json")
    p.add_argument("--reason", choices=["new", "update", "delete"], default="new", help="message reason (BaRS)")
    p.add_argument(
        "--timestamp", type=_instant, help="FHIR instant for meta.lastUpdated and Bundle.timestamp (default: now)"
    )
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("referral", help="read a referral back from a FHIR Bundle (JSON or XML)")
    p.add_argument("file", help="Bundle file, or - for stdin")
    p.add_argument(
        "--explain",
        action="store_true",
        help="print each fact read beside the FHIR location it came from, what needs a clinician's review, "
        "and the eligibility decision, instead of the referral JSON",
    )
    p.set_defaults(func=cmd_referral)

    p = sub.add_parser("validate", help="validate FHIR resources (JSON/XML) against R4, UK Core and our profiles")
    p.add_argument("paths", nargs="+", metavar="PATH", help="resource or Bundle files, or - for stdin")
    p.add_argument("--profile", action="append", default=[], metavar="URL", help="also validate against this profile")
    p.add_argument(
        "--package", action="append", default=[], metavar="DIR_OR_TGZ", help="load definitions from a package"
    )
    p.add_argument("--json", action="store_true", help="print an OperationOutcome instead of one line per issue")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("serve", help="run the FHIR endpoint (settings also from ESCAPE_FHIR_* variables)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.add_argument("--database-url", help="SQLAlchemy URL (default sqlite:///var/escape-fhir.sqlite3)")
    p.add_argument(
        "--package",
        action="append",
        help="FHIR package the validator loads (folder, .tgz or name#version in ~/.fhir/packages), e.g. UK Core",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="server processes (default 1, ESCAPE_FHIR_WORKERS); more than 1 needs PostgreSQL",
    )
    p.add_argument(
        "--hub",
        action="store_true",
        help="hub mode (ESCAPE_FHIR_HUB): route each new referral to its site and forward it (site directory)",
    )
    p.add_argument(
        "--deliver",
        action="store_true",
        help="also run the outbox runner in the server's process (referrals, responses, Subscription notifications)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "send",
        help="send a message Bundle to a receiver's $process-message (BaRS headers, retries; auth from "
        "ESCAPE_FHIR_CLIENT_* or --auth-config)",
    )
    p.add_argument("file", help="message Bundle (JSON or XML), or - for stdin")
    p.add_argument("--to", required=True, metavar="URL", help="the receiver's FHIR base URL or $process-message URL")
    p.add_argument("--format", choices=["json", "xml"], help="wire format (default: the file's)")
    p.add_argument("--request-id", metavar="ID", help="X-Request-ID (default: a new UUID; reuse it to resend)")
    p.add_argument("--correlation-id", metavar="ID", help="X-Correlation-ID (default: a new UUID)")
    p.add_argument("--target-service-id", dest="target", metavar="ID", help="NHSD-Target-Identifier DoS service id")
    p.add_argument("--ods", metavar="CODE", help="the sending organisation's ODS code (NHSD-End-User-Organisation)")
    p.add_argument("--org-name", metavar="NAME", help="the sending organisation's name")
    p.add_argument("--auth-config", metavar="FILE", help="JSON client settings (keys of ESCAPE_FHIR_CLIENT_*)")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("schema", help="print the JSON Schema of the referral input format")
    p.set_defaults(func=cmd_schema)

    from escape_fhir.cli_mesh import add_parser as add_mesh
    from escape_fhir.cli_outbox import add_parser as add_outbox
    from escape_fhir.cli_package import add_parser as add_package
    from escape_fhir.cli_sites import add_parser as add_sites
    from escape_fhir.cli_staff import add_parser as add_staff

    add_outbox(sub)
    add_mesh(sub)
    add_staff(sub)
    add_package(sub)
    add_sites(sub)
    return parser


def _report(exc: EscapeFhirError) -> None:
    errors = getattr(exc, "errors", None)
    if errors:
        print(f"error: {str(exc).split(':', 1)[0]}", file=sys.stderr)
        for err in errors:
            print(f"  {err}", file=sys.stderr)
    elif isinstance(exc, MappingError):
        for issue in exc.issues:
            print(f"error: {issue.location}: {issue.message}", file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except MappingError as exc:
        _report(exc)
        return EXIT_FAILED
    except (InputError, FhirFormatError) as exc:
        _report(exc)
        return EXIT_INPUT
    except _Unavailable as exc:
        _report(exc)
        return EXIT_UNAVAILABLE
    except RecursionError:  # a reader or a check that went deeper than Python's stack allows
        print(f"error: {_TOO_DEEP}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the last resort: one line, never a traceback (STYLE.md: bad input never crashes)
        return _unexpected(exc)


def _unexpected(exc: Exception) -> int:
    """A database that does not answer is 3; anything else is a bug of ours: 70, its type on one line, and the
    traceback only with ESCAPE_FHIR_DEBUG set. Messages of third-party errors are not printed: a database
    error's text can hold the statement's parameters (patient data)."""
    debug = os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if _database_unavailable(exc):
        print(f"error: the database cannot be reached ({type(exc).__name__})", file=sys.stderr)
        return EXIT_UNAVAILABLE
    hint = "" if debug else f"; set {DEBUG_VARIABLE}=1 for the traceback"
    print(f"error: internal error ({type(exc).__name__}){hint}", file=sys.stderr)
    return EXIT_INTERNAL


def _database_unavailable(exc: Exception) -> bool:
    """SQLAlchemy's OperationalError (connection refused, authentication, a locked file), looked up only if
    SQLAlchemy was imported: most commands never load it."""
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.OperationalError | errors.InterfaceError)


if __name__ == "__main__":
    sys.exit(main())
