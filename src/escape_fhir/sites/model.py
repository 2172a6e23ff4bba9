"""The site directory's model: one ESCAPE-pain site as the programme team keeps it (one spreadsheet row).

Plain data, no FHIR and no I/O: the importer builds it (:mod:`escape_fhir.sites.importer`), the routing rules
read it (:mod:`escape_fhir.sites.routing`), and :mod:`escape_fhir.sites.resources` writes it as FHIR
HealthcareService, Organization, Location and Endpoint resources. ``as_record`` / ``from_record`` give the
JSON the database keeps beside the resources, so the directory is rebuilt without reading FHIR back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PROGRAMMES = ("knee-hip", "back")
#: How a site takes referrals (Endpoint resources; ``bars`` and ``mesh`` can be forwarded to by the hub).
METHODS = ("bars", "mesh", "email", "phone")
#: Methods the hub forwards through the outbox; a site with none of them goes on the "to contact" list.
ELECTRONIC = ("bars", "mesh")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Method:
    kind: str  # one of METHODS
    address: str  # BaRS: an http(s) URL or a ``system|value`` endpoint; MESH: a mailbox id; email; phone
    workflow: str = ""  # MESH: the workflow id agreed with the site (nhs-standards.md 6.3)


@dataclass(frozen=True)
class ClassTime:
    days: tuple[str, ...]
    start: str  # HH:MM
    end: str


@dataclass(frozen=True)
class Signpost:
    """An option given to participants at discharge: a gym, a leisure centre, other self-management."""

    name: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.name}: {self.detail}" if self.detail else self.name


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    programme: str
    ods_code: str
    organisation: str
    postcode: str  # normalised, ``LS6 1AA``
    coverage: tuple[str, ...]  # districts ``LS6`` and sectors ``LS6 1``
    sources: tuple[str, ...]  # referral sources accepted (escape_fhir.domain.ReferralSource values)
    methods: tuple[Method, ...]  # in the order the site prefers them
    location_name: str = ""
    address: tuple[str, ...] = ()
    city: str = ""
    latitude: float | None = None
    longitude: float | None = None
    class_times: tuple[ClassTime, ...] = ()
    phone: str = ""
    email: str = ""
    website: str = ""
    signposting: tuple[Signpost, ...] = ()
    active: bool = True

    @property
    def position(self) -> tuple[float, float] | None:
        if self.latitude is None or self.longitude is None:
            return None
        return self.latitude, self.longitude

    def method(self, *kinds: str) -> Method | None:
        """The first method of the site among ``kinds`` (the site's order)."""
        return next((m for m in self.methods if m.kind in kinds), None)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Site:
        values = dict(record)
        values["coverage"] = tuple(values["coverage"])
        values["sources"] = tuple(values["sources"])
        values["methods"] = tuple(Method(**m) for m in values["methods"])
        values["address"] = tuple(values.get("address") or ())
        values["class_times"] = tuple(
            ClassTime(tuple(c["days"]), c["start"], c["end"]) for c in values.get("class_times") or ()
        )
        values["signposting"] = tuple(Signpost(**s) for s in values.get("signposting") or ())
        return cls(**values)
