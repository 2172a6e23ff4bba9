"""Sign-in and sign-out of staff (accounts of :mod:`escape_fhir.pages.staff`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from escape_fhir.pages import staff
from escape_fhir.pages.render import PageRefused, redirect, render
from escape_fhir.pages.sessions import check_csrf, session_of
from escape_fhir.settings import Settings

router = APIRouter(include_in_schema=False)
#: Failed and successful attempts alike count: 10 per client address and username in 15 minutes.
SIGN_IN_ATTEMPTS = 10
SIGN_IN_WINDOW = 15 * 60


def _next(value: object) -> str:
    """Where to go after signing in: a path of this site only (never another site: an open redirect)."""
    text = value if isinstance(value, str) else ""
    return text if text.startswith("/") and not text.startswith("//") and "\\" not in text else "/triage"


@router.get("/sign-in")
def sign_in_page(request: Request, next: str = "/triage") -> Response:
    return render(request, "sign_in.html", title="Sign in", next=_next(next), username="", errors={})


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await request.form()
    if not check_csrf(request, form):
        raise PageRefused(403, "Your session has expired", "Go back to the sign-in page and try again.")
    username = str(form.get("username") or "").strip().lower()
    password = str(form.get("password") or "")
    goto = _next(form.get("next"))
    client = request.client.host if request.client else "unknown"
    if not request.app.state.page_limits["sign-in"].allow(f"{client}|{username}"):
        text = "Too many attempts to sign in. Wait 15 minutes, then try again."
        return render(
            request, "sign_in.html", 429, title="Sign in", next=goto, username=username, errors={"username": text}
        )
    settings: Settings = request.app.state.settings
    member = await run_in_threadpool(staff.authenticate, settings.staff_file, username, password)
    if member is None:
        text = "Enter a username and password that match a staff account"
        return render(
            request, "sign_in.html", 400, title="Sign in", next=goto, username=username, errors={"username": text}
        )
    session = session_of(request)
    session.renew()
    session.set("user", member.username)
    return redirect(request, goto)


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    form = await request.form()
    if not check_csrf(request, form):
        raise PageRefused(403, "Your session has expired", "Go back and try again.")
    session_of(request).renew()
    return render(
        request,
        "message.html",
        title="You have signed out",
        text="You have signed out.",
        link={"href": "/sign-in", "text": "Sign in again"},
    )
