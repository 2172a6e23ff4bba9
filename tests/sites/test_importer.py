"""The site directory importer: the example files, every bad row and column named (one broken thing per
case), all or nothing, and re-import by the site's id keeping each version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from escape_fhir.errors import SiteImportError
from escape_fhir.service.common import now
from escape_fhir.sites.importer import kind_of, read_sites
from escape_fhir.sites.store import all_sites, import_sites
from escape_fhir.storage import Database
from tests.sites.directory import EXAMPLE_CSV, EXAMPLE_JSON, csv_bytes, row, sites


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.from_url(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    database.migrate()
    yield database
    database.dispose()


def test_the_example_csv_and_json_are_the_same_directory() -> None:
    from_csv = read_sites(EXAMPLE_CSV.read_bytes(), "csv")
    from_json = read_sites(EXAMPLE_JSON.read_bytes(), "json")
    assert from_csv == from_json
    assert [s.id for s in from_csv] == ["kh-riverside", "kh-hillside", "kh-moorside", "back-riverside"]
    moorside = from_csv[2]
    assert [m.kind for m in moorside.methods] == ["email", "phone"]
    assert moorside.coverage == ("LS16", "LS6 1") and moorside.position is None
    assert kind_of("sites.csv", EXAMPLE_CSV.read_bytes()) == "csv"
    assert kind_of("-", EXAMPLE_JSON.read_bytes()) == "json"


def test_values_are_normalised() -> None:
    (site,) = sites(
        [row("n", postcode="ls6 1aa", covers=" ls6 ; ls7 2 ", sources="GP", ods_code="rxx1", programme="Back")]
    )
    assert (site.postcode, site.coverage, site.sources, site.ods_code, site.programme) == (
        "LS6 1AA",
        ("LS6", "LS7 2"),
        ("gp",),
        "RXX1",
        "back",
    )


BROKEN = [
    pytest.param({"id": ""}, "row 2.id: required", id="no id"),
    pytest.param({"id": "a b"}, "row 2 (a b).id: 'a b' must be 1-40 letters", id="id with a space"),
    pytest.param({"name": ""}, "row 2 (s).name: required", id="no name"),
    pytest.param({"programme": "hips"}, "row 2 (s).programme: 'hips' is not a programme", id="unknown programme"),
    pytest.param({"ods_code": "R-1"}, "row 2 (s).ods_code: 'R-1' is not an ODS code", id="bad ODS code"),
    pytest.param({"postcode": "LS6 1CC"}, "row 2 (s).postcode: 'LS6 1CC' is not a UK postcode", id="bad postcode"),
    pytest.param({"covers": "LS6;Leeds"}, "row 2 (s).covers: 'Leeds' is neither a postcode district", id="bad area"),
    pytest.param({"sources": "gp;dentist"}, "row 2 (s).sources: 'dentist' is not a referral source", id="bad source"),
    pytest.param({"latitude": "53.8"}, "row 2 (s).latitude: latitude and longitude go together", id="half a position"),
    pytest.param(
        {"latitude": "north", "longitude": "1"}, "row 2 (s).latitude: 'north' is not a number", id="latitude text"
    ),
    pytest.param({"latitude": "0", "longitude": "181"}, "row 2 (s).longitude: 181 is outside", id="longitude range"),
    pytest.param({"bars_endpoint": ""}, "row 2 (s).bars_endpoint: a site needs a referral method", id="no method"),
    pytest.param(
        {"bars_endpoint": "not a url"}, "row 2 (s).bars_endpoint: 'not a url' is not an https URL", id="bad bars"
    ),
    pytest.param(
        {"mesh_mailbox": "SITE1"}, "row 2 (s).mesh_workflow_id: '' is not a MESH workflow id", id="no workflow"
    ),
    pytest.param({"referral_email": "nobody"}, "row 2 (s).referral_email: 'nobody' is not an email", id="bad email"),
    pytest.param({"methods": "fax"}, "row 2 (s).methods: fax is not a referral method", id="unknown method"),
    pytest.param({"methods": "phone"}, "row 2 (s).methods: phone named but its column is empty", id="method no column"),
    pytest.param({"class_times": "mon 11:00-10:00"}, "row 2 (s).class_times: 'mon 11:00-10:00': times", id="times"),
    pytest.param(
        {"class_times": "someday 10:00-11:00"}, "row 2 (s).class_times: 'someday 10:00-11:00' is not", id="day"
    ),
    pytest.param({"active": "maybe"}, "row 2 (s).active: 'maybe' is not yes or no", id="active"),
]


@pytest.mark.parametrize(("change", "error"), BROKEN)
def test_each_bad_column_is_named(change: dict[str, str], error: str) -> None:
    with pytest.raises(SiteImportError) as caught:
        sites([row("s", **change)])
    assert any(str(e).startswith(error) for e in caught.value.errors), caught.value.errors


def test_every_bad_row_is_named_at_once() -> None:
    rows = [row("ok"), row("bad1", postcode="nowhere"), row("ok2"), row("bad2", sources="dentist"), row("ok")]
    with pytest.raises(SiteImportError) as caught:
        sites(rows)
    assert [e.location for e in caught.value.errors] == [
        "row 3 (bad1).postcode",
        "row 5 (bad2).sources",
        "row 6 (ok).id",  # given twice
    ]


@pytest.mark.parametrize(
    ("data", "kind", "error"),
    [
        pytest.param(b"id,name,colour\n", "csv", "header: unknown column 'colour'", id="unknown column"),
        pytest.param(b"id,name\nx,y\n", "csv", "header: missing column programme", id="missing column"),
        pytest.param(b'{"id": "x"}', "json", "file: expected a JSON list", id="JSON object"),
        pytest.param(b"[1, 2]", "json", "file: expected a JSON list", id="JSON list of numbers"),
        pytest.param(b"[", "json", "file: not valid JSON", id="broken JSON"),
        pytest.param(b'[{"id": "x", "colour": "red"}]', "json", "[0] (x).colour: unknown key", id="unknown JSON key"),
        pytest.param(b"\xff\xfe", "csv", "file: not UTF-8", id="not UTF-8"),
        pytest.param(
            csv_bytes([row("x")])[: csv_bytes([row("x")]).index(b"\n") + 1], "csv", "file: no sites", id="empty"
        ),
    ],
)
def test_unusable_files(data: bytes, kind: str, error: str) -> None:
    with pytest.raises(SiteImportError) as caught:
        read_sites(data, kind)
    assert str(caught.value.errors[0]).startswith(error)


def test_a_bad_file_imports_nothing_and_a_good_one_everything(db: Database, tmp_path: Path) -> None:
    from escape_fhir.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes([row("first"), row("second", postcode="LS6")]))
    url = f"--database-url=sqlite:///{tmp_path / 'db.sqlite3'}"
    assert main(["sites", "import", str(bad), url]) == 2
    with db.read() as repo:
        assert all_sites(repo) == []
    assert main(["sites", "import", str(EXAMPLE_CSV), url]) == 0
    with db.read() as repo:
        assert [s.id for s in all_sites(repo)] == ["kh-hillside", "kh-moorside", "back-riverside", "kh-riverside"]


def test_re_import_updates_by_id_and_keeps_history(db: Database) -> None:
    with db.write() as repo:
        first = import_sites(repo, sites([row("a"), row("b")]), now())
    with db.write() as repo:
        second = import_sites(repo, sites([row("a", name="Site A renamed"), row("b"), row("c")]), now())
    assert (first.created, second.created, second.updated, second.unchanged) == (["a", "b"], ["c"], ["a"], ["b"])
    with db.read() as repo:
        versions = repo.history("HealthcareService", "site-a")
        assert [v.content["name"] for v in versions] == ["Site A renamed", "Site a"]
        assert len(repo.history("HealthcareService", "site-b")) == 1  # unchanged: no new version
        assert [s.name for s in all_sites(repo)] == ["Site A renamed", "Site b", "Site c"]


def test_a_site_can_be_retired(db: Database) -> None:
    with db.write() as repo:
        import_sites(repo, sites([row("a")]), now())
    with db.write() as repo:
        import_sites(repo, sites([row("a", active="no")]), now())
    with db.read() as repo:
        service = repo.current("HealthcareService", "site-a")
        assert service is not None and service.content["active"] is False
        assert all_sites(repo)[0].active is False
