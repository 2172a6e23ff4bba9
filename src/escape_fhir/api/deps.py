"""Dependencies shared by the routes (``Annotated`` aliases, after the FastAPI template).

They only read the app's state, so they are ``async``: FastAPI runs a plain ``def`` dependency in its
thread pool, a hand-over to another thread and back for every dependency of every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from escape_fhir.settings import Settings
from escape_fhir.storage import Database
from escape_fhir.validation.api import Validator


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_validator(request: Request) -> Validator:
    validator: Validator = request.app.state.validator
    return validator


async def base_url(request: Request) -> str:
    """The server's base URL for fullUrls and links: the configured one, else the request's."""
    settings: Settings = request.app.state.settings
    return settings.base_url.rstrip("/") or str(request.base_url).rstrip("/")


Db = Annotated[Database, Depends(get_db)]
Base = Annotated[str, Depends(base_url)]
Val = Annotated[Validator, Depends(get_validator)]
