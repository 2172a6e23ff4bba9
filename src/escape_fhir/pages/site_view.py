"""A directory site in the words of the public pages: who may refer, how referrals are sent, when the classes
are, where, and how to get in touch. Shared by the site finder and the self-referral confirmation, so both
describe a site the same way. Plain text only: the templates escape it."""

from __future__ import annotations

from dataclasses import dataclass

from escape_fhir.sites.model import ClassTime, Method, Site
from escape_fhir.sites.routing import Choice

#: Referral sources as a person reads them (the CodeSystem's displays are written for systems).
SOURCES = {
    "gp": "GP",
    "msk-triage": "MSK triage service",
    "physiotherapy": "physiotherapist",
    "orthopaedic-surgeon": "orthopaedic surgeon",
    "self-referral": "yourself (self-referral)",
    "other": "other services",
}
DAYS = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
#: How a referrer sends a referral by each method.
METHODS = {
    "bars": "electronically (BaRS)",
    "mesh": "by MESH to mailbox {address}",
    "email": "by email to {address}",
    "phone": "by phone on {address}",
}


@dataclass(frozen=True)
class SiteView:
    id: str
    name: str
    organisation: str
    self_referral: bool
    #: "GP, MSK triage service and yourself (self-referral)".
    referred_by: str
    #: How referrers send referrals, in the site's order.
    send: tuple[str, ...]
    classes: tuple[str, ...]
    address: tuple[str, ...]
    phone: str
    email: str
    website: str
    #: For a site covering the postcode: "Covers LS6 1"; else "".
    covers: str
    #: For a site that does not cover it: "About 2.1 km from ..." (approximate, see routing), or "".
    distance: str


def words(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def class_time(time: ClassTime) -> str:
    return f"{words([DAYS.get(d, d) for d in time.days])}, {time.start} to {time.end}"


def method_text(method: Method) -> str:
    return METHODS.get(method.kind, method.kind).format(address=method.address)


def address_of(site: Site) -> tuple[str, ...]:
    lines = [site.location_name, *site.address, site.city, site.postcode]
    return tuple(dict.fromkeys(line for line in lines if line))


def view(choice: Choice) -> SiteView:
    site = choice.site
    covers = distance = ""
    if choice.match in ("sector", "district"):
        covers = next((r for r in choice.reasons if r.startswith("covers ")), "")
        covers = "Covers " + covers.removeprefix("covers ").removeprefix(choice.match + " ").split(" (")[0]
    elif choice.distance_km is not None:
        # The routing's own words ("does not cover LS8; about 3.6 km from ..."): the distance part.
        distance = next((r[r.index("about ") :] for r in choice.reasons if "about " in r), "")
        distance = distance[:1].upper() + distance[1:]
    return SiteView(
        id=site.id,
        name=site.name,
        organisation=site.organisation,
        self_referral="self-referral" in site.sources,
        referred_by=words([SOURCES.get(s, s) for s in site.sources]),
        send=tuple(method_text(m) for m in site.methods),
        classes=tuple(class_time(t) for t in site.class_times),
        address=address_of(site),
        phone=site.phone,
        email=site.email,
        website=site.website,
        covers=covers,
        distance=distance,
    )


def how_to_join(site: Site) -> str:
    """What the confirmation page tells a person whose self-referral this site takes."""
    parts = []
    if site.class_times:
        where = f" at {site.location_name or site.name}"
        parts.append(f"Classes are on {'; '.join(class_time(t) for t in site.class_times)}{where}.")
    contact = [f"phone {site.phone}" if site.phone else "", f"email {site.email}" if site.email else ""]
    if any(contact):
        parts.append(f"To ask about your place, {' or '.join(c for c in contact if c)}.")
    return " ".join(parts)
