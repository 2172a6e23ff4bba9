"""The public site finder: a postcode gives the local sites of each programme (knees and hips, backs) and how
to join each, read from the site directory in the database with the routing's own rules
(:func:`escape_fhir.sites.routing.local_sites`): the sites covering the postcode in the routing's order, or,
when none does, the nearest sites of the programme with their approximate distance.

A GET form (``/find-a-site?postcode=LS6 1AA``): it works without JavaScript, a result can be linked to (the
self-referral confirmation does), and nothing is stored. A postcode that is not one is an error beside the
field, the NHS.UK way.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import Response

from escape_fhir.pages.render import render
from escape_fhir.pages.signposting import FINDER, PROGRAMME_SITE
from escape_fhir.pages.site_view import SiteView, view
from escape_fhir.sites.model import PROGRAMMES
from escape_fhir.sites.postcode import Postcode, parse_postcode
from escape_fhir.sites.routing import PROGRAMME_NAMES, local_sites
from escape_fhir.sites.store import directory_for
from escape_fhir.storage import Database

router = APIRouter(include_in_schema=False)
TITLE = "Find an ESCAPE-pain site"


@dataclass(frozen=True)
class Found:
    programme: str
    sites: tuple[SiteView, ...]
    alternatives: tuple[SiteView, ...]
    distance_basis: str


def find(db: Database, postcode: Postcode) -> list[Found]:
    """Each programme's sites for ``postcode`` (module docstring)."""
    found = []
    with db.read() as repo:
        for pathway in PROGRAMMES:
            local = local_sites(directory_for(repo, postcode, pathway), pathway, postcode)
            found.append(
                Found(
                    PROGRAMME_NAMES[pathway],
                    tuple(view(c) for c in local.sites),
                    tuple(view(c) for c in local.alternatives),
                    local.distance_basis,
                )
            )
    return found


def _error(text: str) -> str | None:
    if not text:
        return "Enter a postcode"
    try:
        parse_postcode(text)
    except ValueError:
        return "Enter a full UK postcode, like LS1 4AP"
    return None


@router.get(FINDER)
def finder(request: Request, postcode: str | None = None) -> Response:
    if postcode is None:
        return render(request, "finder.html", title=TITLE, postcode="", results=None, errors={})
    text = postcode.strip()[:20]
    error = _error(text)
    if error is not None:
        return render(request, "finder.html", 400, title=TITLE, postcode=text, results=None, errors={"postcode": error})
    parsed = parse_postcode(text)
    return render(
        request,
        "finder.html",
        title=f"ESCAPE-pain sites for {parsed.text}",
        postcode=parsed.text,
        results=find(request.app.state.db, parsed),
        errors={},
        programme_site=PROGRAMME_SITE,
    )
