"""Rendering the pages: one Jinja2 environment (autoescaped), the session written on every answer, and the
page exceptions that a route raises to send the visitor elsewhere (sign in first) or to refuse (403)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from escape_fhir.pages.sessions import CSRF_FIELD, persist, session_of

TEMPLATES = Path(__file__).parent / "templates"
ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True)
#: Sent with every page: no framing (clickjacking), no sniffing, no referrer carrying a patient's page path.
HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


class PageRedirect(Exception):
    """Send the visitor to ``location`` (303)."""

    def __init__(self, location: str) -> None:
        self.location = location


class PageRefused(Exception):
    """A page the visitor may not see or use: rendered as an error page with ``status``."""

    def __init__(self, status: int, title: str, text: str) -> None:
        self.status, self.title, self.text = status, title, text


def render(request: Request, template: str, code: int = 200, **context: Any) -> Response:
    session = session_of(request)
    staff = getattr(request.state, "staff", None)
    html = ENV.get_template(template).render(
        request=request,
        csrf_field=CSRF_FIELD,
        csrf_token=session.csrf,
        staff=staff,
        signed_in=session.username is not None,
        hub=getattr(request.app.state.settings, "hub", False),
        **context,
    )
    return persist(request, HTMLResponse(html, status_code=code, headers=HEADERS))


def redirect(request: Request, location: str) -> Response:
    return persist(request, RedirectResponse(location, status_code=303, headers=HEADERS))


def sign_in_location(request: Request) -> str:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/sign-in?next={quote(path, safe='')}"
