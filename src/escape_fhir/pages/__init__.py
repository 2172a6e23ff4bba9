"""The pages people use (issue 13): staff sign-in, the triage worklist and referral pages, public
self-referral, the site finder, the validator and the programme figures. Server-rendered (Jinja2) in the NHS.UK design
system's markup and styles (``nhsuk-frontend``, built from ``frontend/`` into ``static/nhsuk`` by
``./dev setup``), working without JavaScript.

The pages call the same services as the API (intake, the triage state machine, the validator) and check the
same scopes; they are routes of the same FastAPI app, installed before the FHIR routes so that their
lower-case paths are not taken for resource types.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from escape_fhir.pages import contacts, figures, finder, self_referral, signin, validator_page, worklist
from escape_fhir.pages.limits import RateLimiter
from escape_fhir.pages.render import PageRedirect, PageRefused, redirect, render
from escape_fhir.pages.sessions import fernet_for
from escape_fhir.pages.signin import SIGN_IN_ATTEMPTS, SIGN_IN_WINDOW
from escape_fhir.settings import Settings

STATIC = Path(__file__).parent / "static"
#: The pages' routers, installed in this order.
ROUTERS = (
    signin.router,
    worklist.router,
    contacts.router,
    self_referral.router,
    finder.router,
    validator_page.router,
    figures.router,
)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the pages to ``app`` (before its FHIR routes)."""
    secret = settings.session_secret.get_secret_value() or secrets.token_urlsafe(32)
    app.state.page_cipher = fernet_for(secret)
    app.state.page_limits = {
        "sign-in": RateLimiter(SIGN_IN_ATTEMPTS, SIGN_IN_WINDOW),
        "self-referral": RateLimiter(settings.self_referrals_per_hour, 3600),
    }
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(PageRedirect)
    async def _redirect(request: Request, exc: PageRedirect) -> Response:
        return redirect(request, exc.location)

    @app.exception_handler(PageRefused)
    async def _refused(request: Request, exc: PageRefused) -> Response:
        return render(request, "message.html", exc.status, title=exc.title, text=exc.text)
