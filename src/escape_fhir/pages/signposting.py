"""Where a self-referral goes and what the person is told about their local site.

:func:`local_site` routes the self-referral with the site directory held in the database, exactly as the hub
and ``$route`` do (:mod:`escape_fhir.sites.routing`: the programme, the person's postcode, source
``self-referral``). The chosen site becomes the referral's receiver (triage sees it as the Task's owner) and
the confirmation page names it and how to join. When no site takes self-referrals for that postcode it
returns None: the referral is stored with no receiving site (triage sees it on the worklist, nothing is
dropped) and the confirmation links to the site finder with the person's postcode.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from escape_fhir.domain.referral import Organisation
from escape_fhir.pages.site_view import how_to_join
from escape_fhir.sites.postcode import parse_postcode
from escape_fhir.sites.routing import route
from escape_fhir.sites.store import directory_for
from escape_fhir.storage import Database

#: The programme's own class finder, named on the confirmation page beside ours.
PROGRAMME_SITE = "https://escape-pain.org/"
#: The public site finder (:mod:`escape_fhir.pages.finder`).
FINDER = "/find-a-site"
SOURCE = "self-referral"


@dataclass(frozen=True)
class LocalSite:
    #: The site's name in the directory ("Riverside ESCAPE-pain for knees and hips").
    name: str
    organisation: Organisation
    #: How to join: class times, place, and how to ask (shown on the confirmation page).
    how_to_join: str


def local_site(db: Database, pathway: str, postcode: str) -> LocalSite | None:
    """The site that takes this person's self-referral (module docstring), or None."""
    try:
        parsed = parse_postcode(postcode)
    except ValueError:
        return None  # the details page checked it already; a postcode we cannot read routes nowhere
    with db.read() as repo:
        chosen = route(directory_for(repo, parsed, pathway), pathway, parsed, SOURCE).chosen
    if chosen is None:
        return None
    site = chosen.site
    organisation = Organisation(ods_code=site.ods_code, name=site.organisation)
    return LocalSite(site.name, organisation, how_to_join(site))


def finder_link(postcode: str) -> str:
    """The site finder showing the sites for ``postcode``."""
    return f"{FINDER}?{urlencode({'postcode': postcode})}"
