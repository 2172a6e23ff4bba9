"""``escape-fhir package build [--out DIR]``: the project's FHIR package as ``<name>-<version>.tgz``.

The archive installs into a FHIR package cache by unpacking it as ``~/.fhir/packages/<name>#<version>/``; FHIR
tools, and ``escape-fhir validate --package escape-fhir.r4#<version>`` or ``serve --package`` alike, then load
it by name and version with its dependencies (see :mod:`escape_fhir.fhir.package`).

Exit codes: 0 written (its path on stdout); 2 the folder cannot be made or written.
"""

from __future__ import annotations

import argparse
from typing import Any

from escape_fhir.cli import EXIT_OK, _Usage


def cmd_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from escape_fhir.fhir.package import build_package

    try:
        path = build_package(Path(args.out))
    except OSError as exc:
        raise _Usage(f"cannot write the package into {args.out}: {exc.strerror or type(exc).__name__}") from None
    print(path)
    return EXIT_OK


def add_parser(sub: Any) -> None:
    p = sub.add_parser("package", help="the project's FHIR package (profiles, value sets, Questionnaires)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = actions.add_parser("build", help="write <name>-<version>.tgz, installable into a FHIR package cache")
    b.add_argument("--out", default=".", metavar="DIR", help="folder to write the .tgz into (default: .)")
    b.set_defaults(func=cmd_build)
