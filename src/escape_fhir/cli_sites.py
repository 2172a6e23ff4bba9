"""``escape-fhir sites import|list|show`` (the site directory) and ``escape-fhir route`` (routing a referral).

Settings come from the ``ESCAPE_FHIR_*`` variables; ``--database-url`` overrides the database. ``route`` reads
the directory from the database, or from a directory file with ``--sites FILE`` (nothing stored).

Exit codes: 0 done (``route``: a site takes the referral); 1 ``sites show`` of an id not in the directory, or
``route`` finding no site (the nearest alternatives are printed), or a referral that cannot be routed (no
patient postcode); 2 bad input (a directory file with bad rows: every one is named and nothing is imported;
an unreadable referral); 3 the database cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from escape_fhir.cli import EXIT_FAILED, EXIT_OK, _read, _Usage, _write_json, load_settings

if TYPE_CHECKING:
    from escape_fhir.sites.model import Site
    from escape_fhir.sites.routing import Routing
    from escape_fhir.storage import Database


def _database(args: argparse.Namespace) -> Database:
    from escape_fhir.storage import Database

    settings = load_settings(database_url=args.database_url or None)
    db = Database.from_url(settings.database_url)
    if settings.migrate:
        db.migrate()
    return db


def _directory_file(path: str) -> list[Site]:
    from escape_fhir.sites.importer import kind_of, read_sites

    data = _read(path)
    return read_sites(data, kind_of(path, data))


def cmd_import(args: argparse.Namespace) -> int:
    from escape_fhir.service.common import now
    from escape_fhir.sites.store import import_sites

    sites = _directory_file(args.file)  # every row checked before the database is opened
    db = _database(args)
    with db.write() as repo:
        report = import_sites(repo, sites, now())
    print(
        f"imported {len(sites)} site(s): {len(report.created)} new, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged"
    )
    return EXIT_OK


def _line(site: Site) -> str:
    state = "" if site.active else "  (inactive)"
    methods = ",".join(m.kind for m in site.methods)
    return f"{site.id:<24} {site.programme:<9} {site.postcode:<9} {methods:<16} {site.name}{state}"


def cmd_list(args: argparse.Namespace) -> int:
    from escape_fhir.sites.postcode import parse_postcode
    from escape_fhir.sites.store import all_sites, covering_ids, records

    postcode = None
    if args.postcode:
        try:
            postcode = parse_postcode(args.postcode)
        except ValueError as exc:
            raise _Usage(f"--postcode: {exc}") from None
    with _database(args).read() as repo:
        if postcode is not None:
            found = sorted(records(repo, covering_ids(repo, postcode)).values(), key=lambda s: (s.name, s.id))
            sites = [s for s in found if not args.programme or s.programme == args.programme]
        else:
            sites = all_sites(repo, args.programme)
    if args.json:
        _write_json([s.as_record() for s in sites])
    else:
        for site in sites:
            print(_line(site))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from escape_fhir.sites.resources import site_resources
    from escape_fhir.sites.store import site

    with _database(args).read() as repo:
        found = site(repo, args.id)
    if found is None:
        print(f"error: no site {args.id!r} in the directory", file=sys.stderr)
        return EXIT_FAILED
    if args.fhir:
        _write_json(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in site_resources(found)]}
        )
    else:
        _write_json(found.as_record())
    return EXIT_OK


def routing_lines(routing: Routing) -> list[str]:
    """The choice and why, then the other sites in order (or the alternatives), as the command prints them."""
    lines = [("routed: " if routing.chosen else "not routed: ") + routing.summary]
    for rank, choice in enumerate(routing.choices or routing.alternatives, 1):
        label = "choice" if routing.choices else "alternative"
        lines.append(f"  {label} {rank}: {choice.site.id} ({choice.site.name})")
        lines += [f"    - {reason}" for reason in choice.reasons]
    lines.append(f"  {routing.distance_basis}")
    return lines


def cmd_route(args: argparse.Namespace) -> int:
    from escape_fhir.sites.request import request_from_bytes
    from escape_fhir.sites.routing import Directory, route
    from escape_fhir.sites.store import directory_for

    wanted = request_from_bytes(_read(args.file))
    if args.sites:
        directory = Directory(_directory_file(args.sites))
    else:
        with _database(args).read() as repo:
            directory = directory_for(repo, wanted.postcode, wanted.pathway)
    routing = route(directory, wanted.pathway, wanted.postcode, wanted.source)
    if args.json:
        from escape_fhir.sites.parameters import routing_parameters

        _write_json(routing_parameters(routing))
    else:
        print("\n".join(routing_lines(routing)))
    return EXIT_OK if routing.chosen else EXIT_FAILED


def add_parser(sub: Any) -> None:
    """The ``sites`` command with its subcommands, and ``route``, added to the main parser."""
    sites = sub.add_parser("sites", help="the ESCAPE-pain site directory (import, list, show)")
    commands = sites.add_subparsers(dest="sites_command", required=True, metavar="SUBCOMMAND")

    def command(parent: Any, name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=text)
        p.add_argument("--database-url", help="SQLAlchemy URL (default ESCAPE_FHIR_DATABASE_URL)")
        return p

    p = command(commands, "import", "import sites from CSV or JSON (all or nothing; re-import updates by id)")
    p.add_argument("file", help="the directory file (.csv or .json), or - for stdin")
    p.set_defaults(func=cmd_import)
    p = command(commands, "list", "list sites (id, programme, postcode, referral methods, name)")
    p.add_argument("--programme", choices=["knee-hip", "back"], help="only sites of this programme")
    p.add_argument("--postcode", help="only sites covering this postcode")
    p.add_argument("--json", action="store_true", help="print the sites as JSON")
    p.set_defaults(func=cmd_list)
    p = command(commands, "show", "show one site as imported (or its FHIR resources with --fhir)")
    p.add_argument("id", help="the site's id")
    p.add_argument("--fhir", action="store_true", help="print its FHIR resources as a collection Bundle")
    p.set_defaults(func=cmd_show)

    p = command(sub, "route", "route a referral to its local site: the choice and why")
    p.add_argument("file", help="referral JSON or FHIR Bundle (JSON or XML), or - for stdin")
    p.add_argument("--sites", metavar="FILE", help="route against this directory file instead of the database")
    p.add_argument("--json", action="store_true", help="print the answer as a FHIR Parameters resource")
    p.set_defaults(func=cmd_route)
