"""The app factory: ``create_app(settings)`` builds the FastAPI app, its database and its routes.

Nothing is built at import time (STYLE.md, FastAPI template): the engine is created here and migrated on
start when ``settings.migrate`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from escape_fhir import __version__, pages
from escape_fhir.api import errors, messaging, rest, sites
from escape_fhir.api.logs import RequestLog
from escape_fhir.service.subscriptions import attach
from escape_fhir.settings import Settings, SettingsError, check_startable
from escape_fhir.site_red_flags import load_red_flags
from escape_fhir.storage import Database
from escape_fhir.validation.api import Validator
from escape_fhir.validation.definitions import default_definitions, package_errors

log = logging.getLogger("escape_fhir.api")


def create_app(settings: Settings, database: Database | None = None) -> FastAPI:
    """The server. Refuses to build without tokens on a non-loopback address, or with a FHIR package that
    cannot be found or read (SettingsError)."""
    check_startable(settings)
    definitions = default_definitions(settings.packages)
    missing = package_errors(definitions)
    if missing:
        raise SettingsError("; ".join(missing))
    db = attach(database or Database.from_url(settings.database_url))
    if settings.migrate:
        db.migrate()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.open_access:
            log.warning(
                "NO ACCESS CONTROL: no bearer tokens are configured, so anyone who can reach %s:%s may read "
                "and submit referrals. Allowed on loopback only; set ESCAPE_FHIR_TOKENS for anything else.",
                settings.host,
                settings.port,
            )
        yield
        db.dispose()

    app = FastAPI(
        title="escape-fhir",
        version=__version__,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    # One validator for the life of the app: definitions loaded and profiles compiled once, not per request.
    app.state.validator = Validator(definitions)
    # The site's red flags (ESCAPE_FHIR_RED_FLAGS) read once at start: a bad file refuses to start (exit 2).
    app.state.red_flags = load_red_flags(settings.red_flags) if settings.red_flags else None
    errors.install(app)
    pages.install(app, settings)  # before the FHIR routes: /triage is a page, not a resource type
    app.include_router(messaging.router)
    app.include_router(sites.router)  # before rest: its searches are the directory's own
    app.include_router(rest.router)
    app.add_middleware(RequestLog)
    return app


def app_from_environment() -> FastAPI:
    """The app of one ``serve --workers N`` process, from the ``ESCAPE_FHIR_*`` variables that ``serve``
    set before uvicorn started the workers (uvicorn's factory: an import string, no arguments)."""
    from escape_fhir.api.logs import configure

    settings = Settings()
    configure(settings.log_level)
    return create_app(settings)
