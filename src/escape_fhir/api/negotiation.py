"""Content negotiation and bodies (FHIR http.html#mime-type, #parameters; RFC 9110 sections 12.5.1, 15.5).

The response format comes from ``_format``, else ``Accept`` (``*/*`` and ``application/*`` mean JSON), else
JSON; nothing acceptable gives 406. A request body must be FHIR JSON or XML by ``Content-Type`` (415
otherwise; absent, it is sniffed) and no larger than the configured limit (413).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from escape_fhir.fhir.formats import MIME, dump, format_from_mime, sniff
from escape_fhir.service.limits import ascii_int
from escape_fhir.service.outcomes import OutcomeError, Problem
from escape_fhir.storage import Stored

Json = dict[str, Any]


def _accepted(accept: str) -> list[str]:
    """Media types of an Accept header, best first (q=0 dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media and q > 0:
            ranked.append((-q, n, media.lower()))
    return [media for _, _, media in sorted(ranked)]


def response_format(request: Request) -> str:
    """``json`` or ``xml`` for the response; OutcomeError 406 when the client accepts neither."""
    wanted = request.query_params.get("_format")
    if wanted:
        fmt = format_from_mime(wanted)
        if fmt is None:
            raise OutcomeError(Problem.NOT_ACCEPTABLE, f"_format {wanted!r} is not json or xml", location="_format")
        return fmt
    accept = request.headers.get("accept")
    if not accept:
        return "json"
    for media in _accepted(accept):
        if media in ("*/*", "application/*"):
            return "json"
        if (fmt := format_from_mime(media)) is not None:
            return fmt
    raise OutcomeError(Problem.NOT_ACCEPTABLE, f"cannot answer in {accept}; FHIR JSON or XML only", location="Accept")


def safe_format(request: Request) -> str:
    """The response format for an error: JSON when negotiation itself failed."""
    try:
        return response_format(request)
    except OutcomeError:
        return "json"


@dataclass(frozen=True)
class Body:
    data: bytes
    fmt: str


async def read_body(request: Request) -> Body:
    """The request body (413 above the limit) and its format (415 when not FHIR JSON or XML)."""
    limit: int = request.app.state.settings.max_body_bytes
    declared = ascii_int(request.headers.get("content-length", ""), max_digits=30)
    if declared is not None and declared > limit:
        raise OutcomeError(Problem.TOO_LARGE, f"the body is larger than {limit} bytes", location="Content-Length")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise OutcomeError(Problem.TOO_LARGE, f"the body is larger than {limit} bytes")
    content_type = request.headers.get("content-type")
    fmt = format_from_mime(content_type) if content_type else sniff(bytes(data))
    if fmt is None:
        got = content_type or "an unrecognisable body"
        raise OutcomeError(
            Problem.UNSUPPORTED_MEDIA_TYPE,
            f"{got} is not FHIR JSON or XML (application/fhir+json, application/fhir+xml)",
            location="Content-Type",
        )
    if not data:
        raise OutcomeError(Problem.BAD_REQUEST, "the request has no body")
    return Body(bytes(data), fmt)


async def negotiated_format(request: Request) -> str:
    """:func:`response_format` as a dependency (``async``: no thread hand-over, see ``deps``)."""
    return response_format(request)


OutFormat = Annotated[str, Depends(negotiated_format)]
InBody = Annotated[Body, Depends(read_body)]


def fhir_response(
    resource: Json, fmt: str, status: int = 200, headers: dict[str, str] | None = None, *, data: bytes | None = None
) -> Response:
    """``resource`` in ``fmt``; ``data`` is its JSON already written (sent as it is when JSON is wanted)."""
    body = data if data is not None and fmt == "json" else dump(resource, fmt)
    return Response(body, status, headers, media_type=f"{MIME[fmt]}; charset=utf-8")


def http_date(moment: datetime) -> str:
    return format_datetime(moment.replace(tzinfo=UTC), usegmt=True)


def version_headers(stored: Stored) -> dict[str, str]:
    """ETag and Last-Modified of a version (FHIR http.html#read, #concurrency)."""
    return {"ETag": f'W/"{stored.version_id}"', "Last-Modified": http_date(stored.last_updated)}
