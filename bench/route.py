"""Benchmark: routing referrals against a site directory (issue 12: 10,000 referrals, 1,000 sites, under
1 ms a referral).

    .venv/bin/python bench/route.py [--sites 1000] [--referrals 10000] [--database]

It invents a directory of ``--sites`` sites (postcode districts of 40 areas, each site covering 2-6 districts
or sectors, most with a position) and ``--referrals`` referrals as referral JSON (random pathway, source and
postcode in those areas, some outside every site's coverage), then measures in the same run:
* the baseline: reading each referral from its JSON (``load_referral``: JSON and the referral model's checks);
* routing each referral with the directory in memory (what the postcode, programme and source need, the
  rules, the reasons), as ``route --sites`` and ``$route`` do once the directory is read;
* with ``--database``: routing a sample of 1,000 of them through the hub's path, reading the part of the
  directory each needs from a SQLite database's indexed columns (``directory_for``).
It prints the time per referral and each ratio to the baseline. Ratios, not seconds, compare machines.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import orjson

from escape_fhir.domain import load_referral
from escape_fhir.service.common import now
from escape_fhir.sites.model import Method, Site
from escape_fhir.sites.request import request_of
from escape_fhir.sites.routing import Directory, route
from escape_fhir.sites.store import directory_for, import_sites
from escape_fhir.storage import Database

ROOT = Path(__file__).resolve().parents[1]
AREAS = [
    "B",
    "BD",
    "BN",
    "BS",
    "CB",
    "CF",
    "CH",
    "CV",
    "DE",
    "DN",
    "EX",
    "GL",
    "HU",
    "L",
    "LE",
    "LS",
    "M",
    "ME",
    "NE",
    "NG",
    "NN",
    "NR",
    "OX",
    "PE",
    "PL",
    "PO",
    "RG",
    "S",
    "SE",
    "SO",
    "ST",
    "SW",
    "TN",
    "TS",
    "W",
    "WF",
    "WS",
    "WV",
    "YO",
    "N",
]
SOURCES = ("gp", "msk-triage", "physiotherapy", "orthopaedic-surgeon", "self-referral", "other")
UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


def invented_sites(count: int, rng: random.Random) -> list[Site]:
    sites = []
    for n in range(count):
        area = rng.choice(AREAS)
        districts = [f"{area}{rng.randint(1, 30)}" for _ in range(rng.randint(2, 6))]
        coverage = tuple(dict.fromkeys(d if rng.random() < 0.7 else f"{d} {rng.randint(0, 9)}" for d in districts))
        placed = rng.random() < 0.8
        sites.append(
            Site(
                id=f"s{n:05d}",
                name=f"Site {n:05d}",
                programme=rng.choice(("knee-hip", "back")),
                ods_code=f"R{n:05d}",
                organisation=f"Trust {n}",
                postcode=f"{districts[0]} 1AA",
                coverage=coverage,
                sources=tuple(rng.sample(SOURCES, rng.randint(2, 6))),
                methods=(Method("bars", f"https://fhir.nhs.uk/Id/dos-service-id|{n}"),),
                latitude=50 + rng.random() * 5 if placed else None,
                longitude=-4 + rng.random() * 4 if placed else None,
            )
        )
    return sites


def invented_referrals(count: int, rng: random.Random) -> list[bytes]:
    template = orjson.loads((ROOT / "examples/referrals/knee-gp.json").read_bytes())
    out = []
    for _ in range(count):
        area = rng.choice(AREAS)
        postcode = f"{area}{rng.randint(1, 35)} {rng.randint(0, 9)}{rng.choice(UNIT_LETTERS)}{rng.choice(UNIT_LETTERS)}"
        referral = {**template, "source": rng.choice(SOURCES[:4])}
        referral["patient"] = {
            **template["patient"],
            "address": {**template["patient"]["address"], "postcode": postcode},
        }
        out.append(orjson.dumps(referral))
    return out


def per_item(func: object, items: list[object]) -> float:
    start = time.perf_counter()
    for item in items:
        func(item)  # type: ignore[operator]
    return (time.perf_counter() - start) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--referrals", type=int, default=10_000)
    parser.add_argument("--database", action="store_true", help="also route 1,000 through SQLite (the hub's path)")
    args = parser.parse_args()
    rng = random.Random(12)
    sites = invented_sites(args.sites, rng)
    referrals = invented_referrals(args.referrals, rng)
    directory = Directory(sites)
    loaded = [load_referral(r) for r in referrals]  # warm the model
    base = per_item(load_referral, list(referrals))
    routed = 0

    def route_one(referral: object) -> None:
        nonlocal routed
        wanted = request_of(referral)  # type: ignore[arg-type]
        routed += route(directory, wanted.pathway, wanted.postcode, wanted.source).chosen is not None

    took = per_item(route_one, list(loaded))
    print(f"{args.referrals} referrals, {args.sites} sites; {routed} routed, {args.referrals - routed} to alternatives")
    print(f"read referral JSON (baseline)  {base * 1e3:8.3f} ms/referral")
    print(f"route (directory in memory)    {took * 1e3:8.3f} ms/referral  ratio {took / base:5.2f}")
    if args.database:
        with tempfile.TemporaryDirectory() as tmp:
            db = Database.from_url(f"sqlite:///{tmp}/bench.sqlite3")
            db.migrate()
            with db.write() as repo:
                import_sites(repo, sites, now())
            sample = loaded[:1000]

            def from_db(referral: object) -> None:
                wanted = request_of(referral)  # type: ignore[arg-type]
                with db.read() as repo:
                    part = directory_for(repo, wanted.postcode, wanted.pathway)
                route(part, wanted.pathway, wanted.postcode, wanted.source)

            took_db = per_item(from_db, list(sample))
            db.dispose()
        print(f"route (SQLite, hub's path)     {took_db * 1e3:8.3f} ms/referral  ratio {took_db / base:5.2f}")


if __name__ == "__main__":
    main()
