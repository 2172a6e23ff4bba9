"""Site directories for the tests, written as a programme team's CSV would be."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from escape_fhir.service.common import now
from escape_fhir.sites.importer import COLUMNS, read_sites
from escape_fhir.sites.model import Site
from escape_fhir.sites.store import import_sites
from escape_fhir.storage import Database
from tests.helpers import EXAMPLES

EXAMPLE_CSV = EXAMPLES / "sites" / "directory" / "sites.csv"
EXAMPLE_JSON = EXAMPLES / "sites" / "directory" / "sites.json"


def row(site_id: str, **values: Any) -> dict[str, str]:
    """A valid site row (a knee/hip site in LS6 taking GP referrals by BaRS) with ``values`` changed."""
    base = {
        "id": site_id,
        "name": f"Site {site_id}",
        "programme": "knee-hip",
        "ods_code": "RXX99",
        "organisation": "Test Trust (invented)",
        "postcode": "LS6 1AA",
        "covers": "LS6",
        "sources": "gp",
        "bars_endpoint": f"https://fhir.nhs.uk/Id/dos-service-id|{abs(hash(site_id)) % 10**6}",
    }
    base.update({k: str(v) for k, v in values.items()})
    return base


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[c for c in COLUMNS if any(c in r for r in rows)])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def sites(rows: list[dict[str, str]]) -> list[Site]:
    return read_sites(csv_bytes(rows), "csv")


def load(db: Database, rows: list[dict[str, str]] | None = None, path: Path = EXAMPLE_CSV) -> None:
    found = sites(rows) if rows is not None else read_sites(path.read_bytes(), "csv")
    with db.write() as repo:
        import_sites(repo, found, now())
