"""Who is signed in, and whether they hold the scope a page needs: the same scopes as the API's bearer
tokens (``service/permissions.py``), held by the staff account instead of a token. Nothing patient-identifiable
is rendered before :func:`require` has passed."""

from __future__ import annotations

from fastapi import Request

from escape_fhir.pages import staff
from escape_fhir.pages.render import PageRedirect, PageRefused, sign_in_location
from escape_fhir.pages.sessions import session_of
from escape_fhir.settings import Scope, Settings


def require(request: Request, scope: Scope) -> staff.StaffMember:
    """The signed-in staff member holding ``scope``; else to the sign-in page, or 403 without the scope."""
    session = session_of(request)
    settings: Settings = request.app.state.settings
    member = staff.member(settings.staff_file, session.username) if session.username else None
    if member is None:
        if session.username:  # the account was removed since: the session ends
            session.renew()
        raise PageRedirect(sign_in_location(request))
    request.state.staff = member
    if scope not in member.scopes:
        text = f"Your account does not have the {scope.value} permission this page needs. Ask an administrator."
        raise PageRefused(403, "You cannot use this page", text)
    return member
