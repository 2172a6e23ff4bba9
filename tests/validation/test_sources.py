"""Definition sources: folders (JSON and XML), package .tgz files, the package cache and its dependencies."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from escape_fhir.fhir import xmlio
from escape_fhir.validation.definitions import Definitions, default_definitions
from escape_fhir.validation.sources import (
    BaseR4Source,
    folder_source,
    open_package,
    package_sources,
    tgz_source,
)
from tests.helpers import shared

UKCORE = "https://fhir.hl7.org.uk/StructureDefinition/"
PATIENT = UKCORE + "UKCore-Patient"
VERIFICATION_VS = "https://fhir.hl7.org.uk/ValueSet/UKCore-NHSNumberVerificationStatus"
ENGLAND_CS = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
UKCORE_FILES = [
    "structuredefinitions/UKCore-Patient.xml",
    "structuredefinitions/Extension-UKCore-NHSNumberVerificationStatus.xml",
    "valuesets/ValueSet-UKCore-NHSNumberVerificationStatus.xml",
    "codesystems/CodeSystem-UKCore-NHSNumberVerificationStatusEngland.xml",
]
MANIFEST = {"name": "uk.example.test", "version": "0.1.0", "fhirVersions": ["4.0.1"], "dependencies": {}}


def _as_json(relative: str) -> tuple[str, bytes]:
    """A UK Core file converted to FHIR JSON: (file name, bytes)."""
    resource = xmlio.xml_to_json(shared("fhir", "ukcore", relative).read_bytes())
    name = f"{resource['resourceType']}-{resource['id']}.json"
    return name, json.dumps(resource).encode()


def _write_package(folder: Path, files: list[tuple[str, bytes]], manifest: Mapping[str, object]) -> Path:
    package = folder / "package"
    package.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps(manifest))
    for name, data in files:
        (package / name).write_bytes(data)
    return folder


def _tgz(path: Path, files: list[tuple[str, bytes]], manifest: Mapping[str, object]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [("package.json", json.dumps(manifest).encode()), *files]:
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _checks(defs: Definitions) -> None:
    """What any source holding the four UK Core files must give."""
    elements = {e["id"]: e for e in defs.snapshot(PATIENT) or []}
    assert elements["Patient.identifier:nhsNumber.system"]["fixedUri"] == "https://fhir.nhs.uk/Id/nhs-number"
    assert defs.problems(PATIENT) == []
    assert defs.has_code(VERIFICATION_VS, ENGLAND_CS, "01") is True
    assert defs.has_code(VERIFICATION_VS, ENGLAND_CS, "99") is False


def test_folder_of_xml() -> None:
    source = folder_source(shared("fhir", "ukcore"))
    assert PATIENT in source.urls("StructureDefinition")
    _checks(Definitions([source, BaseR4Source()]))
    assert source.problems == []


def test_folder_of_json(tmp_path: Path) -> None:
    for name, data in map(_as_json, UKCORE_FILES):
        (tmp_path / name).write_bytes(data)
    _checks(Definitions([folder_source(tmp_path), BaseR4Source()]))


def test_package_folder_with_index(tmp_path: Path) -> None:
    files = [_as_json(f) for f in UKCORE_FILES]
    _write_package(tmp_path, files, MANIFEST)
    entries: list[dict[str, str]] = []
    for name, data in files:
        res = json.loads(data)
        entries.append({"filename": name, "resourceType": res["resourceType"], "id": res["id"], "url": res["url"]})
    index = {"index-version": 1, "files": entries}
    (tmp_path / "package" / ".index.json").write_text(json.dumps(index))
    source = folder_source(tmp_path)
    assert source.manifest == MANIFEST
    _checks(Definitions([source, BaseR4Source()]))


def test_tgz_package(tmp_path: Path) -> None:
    files = [_as_json(f) for f in UKCORE_FILES]
    path = _tgz(tmp_path / "uk.example.test-0.1.0.tgz", files, MANIFEST)
    source = tgz_source(path)
    assert source.manifest == MANIFEST
    assert sorted(source.urls("StructureDefinition")) == sorted(
        [PATIENT, UKCORE + "Extension-UKCore-NHSNumberVerificationStatus"]
    )
    _checks(Definitions([source, BaseR4Source()]))


def test_tgz_keeps_xml_members(tmp_path: Path) -> None:
    files = [(Path(f).name, shared("fhir", "ukcore", f).read_bytes()) for f in UKCORE_FILES]
    _checks(Definitions([tgz_source(_tgz(tmp_path / "p.tgz", files, MANIFEST)), BaseR4Source()]))


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME whose ~/.fhir/packages holds UK Core (4 files) as ukcore.test#2.0.0."""
    monkeypatch.setenv("HOME", str(tmp_path))
    cached = tmp_path / ".fhir" / "packages" / "ukcore.test#2.0.0"
    manifest = {"name": "ukcore.test", "version": "2.0.0", "dependencies": {"hl7.fhir.r4.core": "4.0.1"}}
    _write_package(cached, [_as_json(f) for f in UKCORE_FILES], manifest)
    return tmp_path


def test_package_cache_by_name_and_version(cache_home: Path) -> None:
    _checks(Definitions([open_package("ukcore.test#2.0.0", cache_home / ".fhir" / "packages"), BaseR4Source()]))


def test_package_cache_latest_version_by_name(cache_home: Path) -> None:
    source = open_package("ukcore.test", cache_home / ".fhir" / "packages")
    assert source.problems == []
    assert source.manifest is not None and source.manifest["version"] == "2.0.0"


def test_dependencies_resolved_in_the_cache(cache_home: Path, tmp_path: Path) -> None:
    own = {**MANIFEST, "dependencies": {"hl7.fhir.r4.core": "4.0.1", "ukcore.test": "2.0.0"}}
    path = _tgz(tmp_path / "own.tgz", [], own)
    sources = package_sources([str(path)])
    assert [s.name.rpartition("/")[2] for s in sources] == ["own.tgz", "package"]
    _checks(Definitions([*sources, BaseR4Source()]))
    assert package_sources([str(path)], package_cache=False)[0].problems == []
    assert len(package_sources([str(path)], package_cache=False)) == 1


def test_missing_dependency_and_package_are_problems_not_exceptions(cache_home: Path, tmp_path: Path) -> None:
    own = {**MANIFEST, "dependencies": {"not.there": "1.0.0"}}
    sources = package_sources([str(_tgz(tmp_path / "own.tgz", [], own)), "no.such.package#9.9.9"])
    messages = [p.message for s in sources for p in s.problems]
    assert any("not.there#1.0.0" in m for m in messages)
    assert any("no.such.package#9.9.9" in m for m in messages)


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"resourceType": "ValueSet", "url": "http://x/vs", "status": ')
    (tmp_path / "bad.xml").write_text(
        '<ValueSet xmlns="http://hl7.org/fhir"><url value="http://x/bad"/><nonsense/></ValueSet>'
    )
    source = folder_source(tmp_path)
    assert source.resource("ValueSet", "http://x/bad") is None
    assert [p.location for p in source.problems] == ["broken.json", "bad.xml"]


def test_default_definitions_is_cached_per_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    first = default_definitions([tmp_path], package_cache=False)
    assert default_definitions([str(tmp_path)], package_cache=False) is first
    assert default_definitions([], package_cache=False) is not first
    assert first.questionnaire("https://w3id.org/escape-fhir/Questionnaire/startback") is not None
