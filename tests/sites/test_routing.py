"""Every routing rule and tie-break (escape_fhir.sites.routing), as a table over one invented directory.

Positions (latitude, longitude) are in Leeds, roughly 1-10 km apart; ``anchor`` (a back site covering the
sector LS6 2) gives the patient's approximate position for LS6 2xx postcodes.
"""

from __future__ import annotations

import pytest

from escape_fhir.sites.postcode import parse_postcode
from escape_fhir.sites.routing import Directory, haversine_km, local_sites, route
from tests.sites.directory import row, sites

DIRECTORY = Directory(
    sites(
        [
            row("anchor", programme="back", covers="LS6 2", latitude="53.820", longitude="-1.580"),
            row("district-far", name="A far", covers="LS6", latitude="53.900", longitude="-1.580"),
            row("district-near", name="B near", covers="LS6", latitude="53.825", longitude="-1.580"),
            row("district-nowhere", name="0 no position", covers="LS6"),
            row("sector", name="Z sector", covers="LS6 2", sources="gp;self-referral"),
            row("z-alpha", name="Alpha", covers="LS10", postcode="LS10 1AA"),
            row("a-beta", name="Beta", covers="LS10", postcode="LS10 1AA"),
            row("same-name-2", name="Twin", covers="LS9", postcode="LS9 1AA"),
            row("same-name-1", name="Twin", covers="LS9", postcode="LS9 1AA"),
            row("msk-only", name="MSK only", covers="LS12", sources="msk-triage", latitude="53.79", longitude="-1.60"),
            row("retired", covers="LS12", active="no"),
            row("back-ls12", programme="back", covers="LS12", latitude="53.79", longitude="-1.60"),
            row("bradford", name="Bradford", covers="BD1", postcode="BD1 1AA", latitude="53.79", longitude="-1.75"),
        ]
    )
)

CHOSEN = [
    pytest.param(
        "knee-hip",
        "LS6 2AB",
        "gp",
        ["sector", "district-near", "district-far", "district-nowhere"],
        id="sector beats district, then distance, then a position before none",
    ),
    pytest.param(
        "knee-hip",
        "LS6 3AB",
        "gp",
        ["district-far", "district-near", "district-nowhere"],
        id="district only: distance from the first placed site covering it",
    ),
    pytest.param("knee-hip", "LS10 1AB", "gp", ["z-alpha", "a-beta"], id="no position: name before id"),
    pytest.param("knee-hip", "LS9 1AB", "gp", ["same-name-1", "same-name-2"], id="same name: id"),
    pytest.param("knee-hip", "LS6 2AB", "self-referral", ["sector"], id="source accepted"),
    pytest.param("back", "LS6 2AB", "gp", ["anchor"], id="programme"),
    pytest.param("knee-hip", "LS12 1AB", "msk-triage", ["msk-only"], id="inactive site excluded"),
]


@pytest.mark.parametrize(("pathway", "postcode", "source", "expected"), CHOSEN)
def test_the_sites_that_take_the_referral_best_first(
    pathway: str, postcode: str, source: str, expected: list[str]
) -> None:
    routing = route(DIRECTORY, pathway, parse_postcode(postcode), source)
    assert [c.site.id for c in routing.choices] == expected
    assert routing.alternatives == ()
    assert routing.chosen is not None and routing.summary.startswith(routing.chosen.site.name)


def test_each_choice_says_why() -> None:
    routing = route(DIRECTORY, "knee-hip", parse_postcode("LS6 2AB"), "gp")
    best, near = routing.choices[0], routing.choices[1]
    assert best.reasons == (
        "covers sector LS6 2 (LS6 2AB)",
        "runs ESCAPE-pain for knees and hips",
        "accepts gp referrals",
    )
    assert near.reasons[0] == "covers district LS6 (LS6 2AB)"
    assert near.reasons[-1] == "about 0.6 km from Site anchor, the nearest known point to LS6 2"
    assert routing.summary.endswith("chosen before 3 other site(s) by sector match before district match")
    assert "distance measured from Site anchor" in routing.distance_basis
    second = route(DIRECTORY, "knee-hip", parse_postcode("LS6 3AB"), "gp")
    assert second.summary.endswith("by distance")


NONE = [
    pytest.param(
        "knee-hip",
        "LS12 1AB",
        "gp",
        ["msk-only", "district-near", "bradford"],
        "does not accept gp referrals (accepts msk-triage)",
        id="covering site of another source first, then distance",
    ),
    pytest.param(
        "knee-hip",
        "LS7 1AB",
        "gp",
        ["district-nowhere", "district-far", "z-alpha"],
        "covers LS6 in the same postcode area LS",
        id="no position known: sites of the same area",
    ),
    pytest.param("knee-hip", "M1 1AE", "gp", [], "", id="nothing near"),
    pytest.param("back", "BD1 1AB", "gp", ["back-ls12", "anchor"], "does not cover BD1; about", id="distance"),
]


@pytest.mark.parametrize(("pathway", "postcode", "source", "alternatives", "first_reason"), NONE)
def test_when_no_site_takes_it_the_answer_says_so_and_names_the_nearest(
    pathway: str, postcode: str, source: str, alternatives: list[str], first_reason: str
) -> None:
    routing = route(DIRECTORY, pathway, parse_postcode(postcode), source)
    assert routing.chosen is None and routing.choices == ()
    assert routing.summary.startswith(f"no site covers {parse_postcode(postcode).text}")
    assert [c.site.id for c in routing.alternatives] == alternatives
    if first_reason:
        assert any(first_reason in r for r in routing.alternatives[0].reasons)
    else:
        assert "no site of ESCAPE-pain for knees and hips is known near M" in routing.summary


def test_without_a_known_position_distance_is_not_used_and_the_answer_says_so() -> None:
    routing = route(DIRECTORY, "knee-hip", parse_postcode("LS9 1AB"), "gp")
    assert routing.distance_basis == "distance not used: no site covering LS9 has a known position"
    assert all(c.distance_km is None for c in routing.choices)


def test_haversine() -> None:
    # Leeds station (53.7950, -1.5474) to York station (53.9580, -1.0930): about 34.9 km.
    assert round(haversine_km((53.7950, -1.5474), (53.9580, -1.0930)), 0) == 35
    assert haversine_km((53.8, -1.5), (53.8, -1.5)) == 0


def test_the_nearest_alternatives_are_the_nearest_of_all() -> None:
    """The grid's ring search finds what measuring every site finds (random directories, random points)."""
    import random

    rng = random.Random(7)
    for _ in range(30):
        placed = [
            row(
                f"p{n}", covers="LS6", latitude=f"{50 + rng.random() * 8:.4f}", longitude=f"{-6 + rng.random() * 8:.4f}"
            )
            for n in range(rng.randint(1, 60))
        ]
        directory = Directory(sites(placed))
        point = (50 + rng.random() * 8, -6 + rng.random() * 8)
        skip = {f"p{n}" for n in range(3)}
        expected = sorted(
            (haversine_km(point, s.position), s.name, s.id) for s in directory.sites if s.position and s.id not in skip
        )[:3]
        found = directory.grid("knee-hip").nearest(point, 3, skip)
        assert [(km, s.id) for km, s in found] == [(km, i) for km, _, i in expected]


def test_local_sites_are_every_covering_site_of_the_programme_whatever_it_accepts_in_the_routing_order() -> None:
    postcode = parse_postcode("LS6 2AB")
    local = local_sites(DIRECTORY, "knee-hip", postcode)
    assert [c.site.id for c in local.sites] == ["sector", "district-near", "district-far", "district-nowhere"]
    assert [c.site.id for c in local.sites] == [c.site.id for c in route(DIRECTORY, "knee-hip", postcode, "gp").choices]
    # Only "sector" takes self-referrals: routing a self-referral chooses it, the finder still shows the others.
    assert [c.site.id for c in route(DIRECTORY, "knee-hip", postcode, "self-referral").choices] == ["sector"]
    assert local.alternatives == () and local.distance_basis.startswith("distance measured from")
    assert [c.site.id for c in local_sites(DIRECTORY, "knee-hip", parse_postcode("LS12 1AB")).sites] == ["msk-only"]


def test_where_no_site_of_the_programme_covers_the_postcode_local_sites_are_the_routings_alternatives() -> None:
    postcode = parse_postcode("LS7 1AB")
    local = local_sites(DIRECTORY, "knee-hip", postcode)
    expected = route(DIRECTORY, "knee-hip", postcode, "gp").alternatives
    assert local.sites == () and local.alternatives == expected and len(expected) == 3
