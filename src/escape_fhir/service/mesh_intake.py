"""Referral messages that arrive by MESH go through the same intake as ``$process-message``
(:func:`escape_fhir.service.intake.process_message`; MESH: nhs-standards.md 6.3).

Each MESH message is one delivery: its MESH message id is the request id (``mesh:<id>``), so a message
downloaded again after a lost acknowledgement is recognised and not processed twice, and the Bundle id
keeps its usual role (the same Bundle sent twice, in two MESH messages, is stored once).

What :class:`MeshIntake` answers, and so what :mod:`escape_fhir.transport.mesh` acknowledges:

- ``processed``: stored and committed;
- ``duplicate``: this MESH message, or this Bundle with the same content, was processed before (nothing
  changes);
- ``refused``: the message is not a referral message we can take (not FHIR, invalid, not mappable, a
  conflict with a held referral, a Bundle id reused for other content, a second ``new`` of a held referral). Sending it again would get the same answer, so keeping it in the inbox
  would only block it: the bytes as received, the OperationOutcome saying why and the MESH headers are
  written to the dead-letter folder (``ESCAPE_FHIR_MESH_DEAD_LETTER_DIR``) and synced to disk first;
- ``report``: a MESH report (e.g. a message we sent was undeliverable), kept in the same folder;
- a failure of ours (database unavailable, a 5xx problem) raises, and the message stays in the inbox.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from escape_fhir.domain import RedFlag
from escape_fhir.errors import FhirFormatError, Issue
from escape_fhir.fhir import jsonio
from escape_fhir.fhir.formats import format_from_mime, parse, sniff
from escape_fhir.service import intake
from escape_fhir.service.outcomes import OutcomeError, Problem, outcome
from escape_fhir.storage import Database
from escape_fhir.transport.mesh import REPORT, Disposition, Handled, InboundMessage
from escape_fhir.validation.api import Validator

Json = dict[str, Any]
log = logging.getLogger("escape_fhir.mesh")

REQUEST_PREFIX = "mesh:"
#: Longest correlation id kept (the message log's column holds 255).
MAX_ID = 200


class MeshIntake:
    """The handler of :meth:`MeshTransport.poll` for referral messages (module docstring)."""

    def __init__(
        self,
        db: Database,
        validator: Validator,
        dead_letters: Path,
        base: str,
        red_flags: Mapping[str, RedFlag] | None = None,
    ) -> None:
        self.red_flags = red_flags
        self.db = db
        self.validator = validator
        self.dead_letters = DeadLetters(dead_letters)
        self.base = base.rstrip("/")

    def __call__(self, message: InboundMessage) -> Handled:
        if message.message_type == REPORT:
            return self._report(message)
        request_id = REQUEST_PREFIX + message.message_id
        with self.db.read() as repo:
            if repo.request_seen(request_id):
                return Handled(Disposition.DUPLICATE, "this MESH message was processed before")
        correlation = (message.local_id or request_id)[:MAX_ID]
        try:
            fmt = _format(message)
            bundle = parse(message.data, fmt)
            delivery = intake.Delivery(request_id, correlation, message.data, fmt, self.base, red_flags=self.red_flags)
            result = intake.process_message(self.db, bundle, delivery, self.validator)
        except FhirFormatError as exc:
            problem = OutcomeError(Problem.BAD_REQUEST, [Issue("error", "structure", str(exc), exc.location)])
            return self._refuse(message, problem)
        except OutcomeError as exc:
            if exc.status >= 500:
                raise
            return self._refuse(message, exc)
        if result.replayed:
            return Handled(Disposition.DUPLICATE, f"Bundle already processed as {result.referral}")
        return Handled(Disposition.PROCESSED, f"referral {result.referral}")

    def _refuse(self, message: InboundMessage, problem: OutcomeError) -> Handled:
        where = self.dead_letters.keep(message, "refused", outcome(problem.problem, problem.issues))
        first = problem.issues[0] if problem.issues else Issue("error", "unknown", "")
        more = f" (+{len(problem.issues) - 1} more)" if len(problem.issues) > 1 else ""
        # Locations and codes only: an issue's text may quote the content (patient data).
        detail = f"{problem.status} {first.code} at {first.location or 'the message'}{more}; kept in {where}"
        return Handled(Disposition.REFUSED, detail)

    def _report(self, message: InboundMessage) -> Handled:
        where = self.dead_letters.keep(message, "report", None)
        code = message.headers.get("statuscode", "?")
        linked = message.headers.get("linkedmsgid") or "unknown"
        description = message.headers.get("statusdescription", "")
        return Handled(Disposition.REPORT, f"MESH report {code} {description} for message {linked}; kept in {where}")


def _format(message: InboundMessage) -> str:
    """``json`` or ``xml`` from ``Mex-Content-Type``, else from the bytes; FhirFormatError if neither."""
    fmt = format_from_mime(message.content_type or "") or sniff(message.data)
    if fmt is None:
        raise FhirFormatError(f"content type {message.content_type or 'unknown'} is neither FHIR JSON nor FHIR XML")
    return fmt


class DeadLetters:
    """A folder with one sub-folder per kept MESH message: ``message.<ext>`` (the bytes as received),
    ``outcome.json`` (why it was refused) and ``mesh.json`` (its MESH headers and what happened).

    A sub-folder is written under a temporary name, synced and renamed, so a crash never leaves half of one;
    a message kept before (its acknowledgement was lost) is not written again. Owner-only permissions: the
    content is patient data, like the database.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def keep(self, message: InboundMessage, kind: str, reason: Json | None) -> Path:
        target = self.root / _safe(message.message_id)
        if target.exists():
            return target
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.root / f".{target.name}.{os.getpid()}.tmp"
        temporary.mkdir(mode=0o700, exist_ok=True)
        ext = {"json": "json", "xml": "xml"}.get(format_from_mime(message.content_type or "") or "", "bin")
        about = {
            "kind": kind,
            "keptAt": datetime.now(UTC).isoformat(timespec="seconds"),
            **{k: v for k, v in asdict(message).items() if k not in ("data", "headers")},
            "headers": dict(message.headers),
        }
        _write(temporary / f"message.{ext}", message.data)
        _write(temporary / "mesh.json", jsonio.dumps(about, pretty=True))
        if reason is not None:
            _write(temporary / "outcome.json", jsonio.dumps(reason, pretty=True))
        _sync_dir(temporary)
        os.replace(temporary, target)
        _sync_dir(self.root)
        log.info("MESH message %s kept as %s in %s", message.message_id, kind, self.root)
        return target


def _safe(message_id: str) -> str:
    """A MESH message id as a folder name (they are letters, digits and ``_``; anything else is replaced)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in message_id) or "_"


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb", opener=lambda name, flags: os.open(name, flags, 0o600)) as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
