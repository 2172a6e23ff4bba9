"""Where a self-referral goes and what the person is told about their local site.

THE SITES SEAM (issue 12, built separately): :func:`local_site` is where the site directory's routing plugs
in. Given the programme and the person's postcode it returns the site that will contact them, or None. Until
the directory exists it returns None, the referral is stored with no receiving site (triage sees it on the
worklist), and the confirmation page tells the person how to find a local class themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from escape_fhir.domain.referral import Organisation

#: The programme's own class finder, named on the confirmation page when no site is known.
PROGRAMME_SITE = "https://escape-pain.org/"


@dataclass(frozen=True)
class LocalSite:
    organisation: Organisation
    #: How the site will contact the person, or how to join (shown on the confirmation page).
    how_to_join: str


def local_site(pathway: str, postcode: str) -> LocalSite | None:
    """The site that takes this person's self-referral; None until the site directory (issue 12) is wired in."""
    del pathway, postcode
    return None
