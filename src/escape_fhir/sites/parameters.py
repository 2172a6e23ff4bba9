"""A routing as the FHIR Parameters resource that ``$route`` answers (and ``route --json`` prints).

``routed`` (boolean), ``summary`` (the choice and why, or why none), ``distanceBasis`` (how distances were
measured), then one ``choice`` per site that takes the referral, best first, or one ``alternative`` per site
the referrer could turn to; each with parts ``site`` (reference to the HealthcareService), ``rank``,
``match`` (sector, district, distance, area), ``distanceKm`` when measured, and a ``reason`` per rule.
"""

from __future__ import annotations

from typing import Any

from escape_fhir.sites.resources import service_id
from escape_fhir.sites.routing import Choice, Routing

Json = dict[str, Any]


def _choice(name: str, rank: int, choice: Choice) -> Json:
    parts: list[Json] = [
        {
            "name": "site",
            "valueReference": {
                "reference": f"HealthcareService/{service_id(choice.site.id)}",
                "display": choice.site.name,
            },
        },
        {"name": "rank", "valueInteger": rank},
        {"name": "match", "valueCode": choice.match},
    ]
    if choice.distance_km is not None:
        parts.append({"name": "distanceKm", "valueDecimal": round(choice.distance_km, 1)})
    parts += [{"name": "reason", "valueString": reason} for reason in choice.reasons]
    return {"name": name, "part": parts}


def routing_parameters(routing: Routing) -> Json:
    parameters: list[Json] = [
        {"name": "routed", "valueBoolean": routing.chosen is not None},
        {"name": "summary", "valueString": routing.summary},
        {"name": "distanceBasis", "valueString": routing.distance_basis},
    ]
    parameters += [_choice("choice", n, c) for n, c in enumerate(routing.choices, 1)]
    parameters += [_choice("alternative", n, c) for n, c in enumerate(routing.alternatives, 1)]
    return {"resourceType": "Parameters", "parameter": parameters}
