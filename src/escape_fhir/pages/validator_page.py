"""The validator page (staff with the ``validate`` scope, as ``$validate``): paste or upload a resource or
Bundle (JSON or XML), choose which of the configured FHIR packages to validate against, and read each issue
beside the element it is about (the resource shown as FHIR JSON, one line per element, its FHIRPath kept)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response

from escape_fhir.errors import EscapeFhirError, Issue
from escape_fhir.fhir import jsonio
from escape_fhir.fhir.formats import parse
from escape_fhir.pages.access import require
from escape_fhir.pages.render import PageRefused, render
from escape_fhir.pages.sessions import check_csrf
from escape_fhir.settings import Scope, Settings
from escape_fhir.validation.api import Validator
from escape_fhir.validation.definitions import default_definitions

router = APIRouter(include_in_schema=False)
_INDEX = re.compile(r"\[\d+\]")


@dataclass
class Line:
    number: int
    text: str
    path: str
    issues: list[Issue] = field(default_factory=list)


def lines(node: Any, path: str, key: str = "", indent: int = 0) -> Iterator[tuple[str, str]]:
    """Pretty JSON of ``node``, one (text, FHIRPath) per line: each element's line carries its path."""
    pad, label = "  " * indent, f'"{key}": ' if key else ""
    if isinstance(node, dict):
        yield f"{pad}{label}{{", path
        for name, value in node.items():
            yield from lines(value, f"{path}.{name}", name, indent + 1)
        yield f"{pad}}}", path
    elif isinstance(node, list):
        yield f"{pad}{label}[", path
        for i, value in enumerate(node):
            yield from lines(value, f"{path}[{i}]", "", indent + 1)
        yield f"{pad}]", path
    else:
        yield f"{pad}{label}{jsonio.dumps(node).decode('utf-8')}", path


def annotate(resource: dict[str, Any], issues: list[Issue]) -> tuple[list[Line], list[Issue]]:
    """The resource's lines with each issue on the line of its element (the longest path that its location
    starts with, indices optional); issues with no such line are returned apart."""
    root = str(resource.get("resourceType", "Resource"))
    shown = [Line(n + 1, text, path) for n, (text, path) in enumerate(lines(resource, root))]
    first: dict[str, Line] = {}
    for line in shown:
        first.setdefault(line.path, line)
        first.setdefault(_INDEX.sub("", line.path), line)
    apart: list[Issue] = []
    for issue in issues:
        location = issue.location.split(" ")[0]
        target = None
        while location and target is None:
            target = first.get(location) or first.get(_INDEX.sub("", location))
            location = location.rpartition(".")[0] if "." in location else ""
        (target.issues if target else apart).append(issue)
    return shown, apart


@functools.lru_cache(maxsize=8)
def _validator(packages: tuple[str, ...]) -> Validator:
    return Validator(default_definitions(packages))


def _page(request: Request, status: int = 200, **context: Any) -> Response:
    settings: Settings = request.app.state.settings
    context.setdefault("chosen", list(settings.packages))
    return render(
        request,
        "validator.html",
        status,
        title="Validate FHIR",
        home="/triage",
        packages=settings.packages,
        errors=context.pop("errors", {}),
        **context,
    )


@router.get("/validator")
def validator_page(request: Request) -> Response:
    require(request, Scope.VALIDATE)
    return _page(request, text="")


@router.post("/validator")
async def validate(request: Request) -> Response:
    require(request, Scope.VALIDATE)
    settings: Settings = request.app.state.settings
    async with request.form(max_files=1, max_fields=50, max_part_size=settings.max_body_bytes) as form:
        if not check_csrf(request, form):
            raise PageRefused(403, "Your session has expired", "Reload the validator page and try again.")
        upload = form.get("file")
        data = await upload.read(settings.max_body_bytes + 1) if isinstance(upload, UploadFile) else b""
        text = str(form.get("text") or "")
        chosen = [p for p in form.getlist("package") if p in settings.packages]
    data = data or text.encode("utf-8")
    if not data.strip():
        return _page(request, 400, text=text, chosen=chosen, errors={"text": "Paste a FHIR resource or choose a file"})
    if len(data) > settings.max_body_bytes:
        return _page(
            request,
            400,
            text="",
            chosen=chosen,
            errors={"text": f"The file is larger than {settings.max_body_bytes} bytes"},
        )
    try:
        resource = parse(data)
    except (EscapeFhirError, RecursionError) as exc:
        return _page(request, 400, text=text, chosen=chosen, errors={"text": f"This is not FHIR JSON or XML: {exc}"})
    if not isinstance(resource.get("resourceType"), str):
        return _page(request, 400, text=text, chosen=chosen, errors={"text": "The content has no resourceType"})
    validator = request.app.state.validator if chosen == list(settings.packages) else _validator(tuple(chosen))
    result = await run_in_threadpool(validator.validate, resource)
    shown, apart = annotate(resource, list(result.issues))
    counts = {s: sum(1 for i in result.issues if i.severity == s) for s in ("fatal", "error", "warning", "information")}
    return _page(request, text=text, chosen=chosen, lines=shown, apart=apart, counts=counts, checked=True)
