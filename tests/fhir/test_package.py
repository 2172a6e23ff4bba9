"""The FHIR package as others install it: ``escape-fhir package build`` writes ``<name>-<version>.tgz``; unpacked
into a package cache (``~/.fhir/packages/<name>#<version>/package``) it is loaded by name and version, with UK
Core followed as its declared dependency, and the project's examples validate against it with no errors.

The HL7 reference validator cannot run here (Java is installed, but its jar is on Maven Central, and only PyPI,
Debian and npm are reachable), so the package is loaded by our own validator through the same package-cache
code the CLI and the server use (``--package name#version``), and checked structurally: archive layout,
``package.json``, ``.index.json`` against the files, the ImplementationGuide's list against the resources.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest

from escape_fhir.fhir import codes
from escape_fhir.fhir.conformance import PACKAGE_NAME, package_manifest
from escape_fhir.fhir.package import archive_name, build_package
from escape_fhir.validation.api import Validator
from escape_fhir.validation.crossversion import CrossVersionSource, builtin_extensions
from escape_fhir.validation.definitions import Definitions
from escape_fhir.validation.sources import BaseR4Source, package_sources
from tests.api.conftest import Server
from tests.helpers import EXAMPLES, ROOT, shared

COMMAND = Path(sys.executable).parent / "escape-fhir"
VERSION = str(package_manifest()["version"])
SPEC = f"{PACKAGE_NAME}#{VERSION}"
EXAMPLE_FILES = sorted((EXAMPLES / "resources").glob("*.json")) + sorted((EXAMPLES / "bundles").glob("*.json"))


def _install(archive: Path, cache: Path) -> Path:
    """Unpack a package .tgz into a cache as FHIR tools do: ``<cache>/<name>#<version>/package/...``."""
    target = cache / SPEC
    target.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(target, filter="data")
    return target / "package"


def _install_ukcore(cache: Path) -> None:
    """UK Core 2.0.0 from ../shared, laid out as the registry's ``fhir.r4.ukcore.stu2#2.0.0`` (files flat in
    ``package/``, the registry id as its name)."""
    source = shared("fhir", "ukcore")
    target = cache / "fhir.r4.ukcore.stu2#2.0.0" / "package"
    target.mkdir(parents=True)
    for folder in ("structuredefinitions", "valuesets", "codesystems"):
        for path in (source / folder).iterdir():
            shutil.copy(path, target / path.name)
    manifest = json.loads((source / "package.json").read_text(encoding="utf-8"))
    (target / "package.json").write_text(json.dumps({**manifest, "name": "fhir.r4.ukcore.stu2"}), encoding="utf-8")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_package(tmp_path_factory.mktemp("built"))


@pytest.fixture
def package_home(tmp_path: Path, archive: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder whose package cache holds the built package (no ../shared needed); HOME points at it."""
    _install(archive, tmp_path / ".fhir" / "packages")
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def cache_home(package_home: Path) -> Path:
    """The same, with UK Core 2.0.0 installed beside it (from ../shared: skipped without)."""
    _install_ukcore(package_home / ".fhir" / "packages")
    return package_home


def test_archive_is_named_by_name_and_version_and_holds_everything_under_package(archive: Path) -> None:
    assert archive.name == archive_name() == f"{PACKAGE_NAME}-{VERSION}.tgz"
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("package/package.json"))  # type: ignore[arg-type]
        index = json.load(tar.extractfile("package/.index.json"))  # type: ignore[arg-type]
        resources = {
            n: json.load(tar.extractfile(n))  # type: ignore[arg-type]
            for n in names
            if n.endswith(".json") and n.rpartition("/")[2] not in ("package.json", ".index.json")
        }
    assert all(n == "package" or n.startswith("package/") for n in names), names
    assert manifest == package_manifest()
    # Every dependency the content needs, by the ids the registries use (reference-verdicts.md, last section).
    assert manifest["dependencies"] == {
        "hl7.fhir.r4.core": "4.0.1",
        "fhir.r4.ukcore.stu2": "2.0.0",
        "hl7.fhir.uv.sdc": "3.0.0",
        "hl7.fhir.uv.extensions.r4": "5.2.0",
    }
    # .index.json (packages.html "index-version 1"): one row per resource file, its fields those of the file.
    assert index["index-version"] == 1
    assert sorted(f"package/{f['filename']}" for f in index["files"]) == sorted(resources)
    for row in index["files"]:
        resource = resources[f"package/{row['filename']}"]
        for key in ("resourceType", "id", "url", "version", "kind", "type"):
            assert row.get(key) == resource.get(key), (row["filename"], key)
    # The ImplementationGuide names every other resource of the package and each dependency but core.
    guide = next(r for r in resources.values() if r["resourceType"] == "ImplementationGuide")
    listed = {r["reference"]["reference"] for r in guide["definition"]["resource"]}
    others = {f"{r['resourceType']}/{r['id']}" for r in resources.values() if r is not guide}
    assert listed == others
    assert {d["packageId"]: d["version"] for d in guide["dependsOn"]} == {
        k: v for k, v in manifest["dependencies"].items() if k != "hl7.fhir.r4.core"
    }
    assert guide["packageId"] == PACKAGE_NAME and guide["version"] == VERSION
    assert guide["url"] == codes.IMPLEMENTATION_GUIDE  # the server's CapabilityStatement names it


def test_building_twice_gives_the_same_bytes(archive: Path, tmp_path: Path) -> None:
    assert build_package(tmp_path).read_bytes() == archive.read_bytes()


def _validator_of_the_installed_package() -> Validator:
    """A validator whose only project definitions come from the installed package (not from escape-fhir's
    own built-in copy), with its dependencies followed in the cache, as a third-party tool would load it."""
    sources = package_sources([SPEC])
    assert [p.message for s in sources for p in s.problems] == []
    loaded = [str((s.manifest or {}).get("name")) for s in sources]
    assert loaded == [PACKAGE_NAME, "fhir.r4.ukcore.stu2"]
    return Validator(Definitions([*sources, BaseR4Source(), builtin_extensions(), CrossVersionSource()]))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_validate_against_the_installed_package(cache_home: Path, path: Path) -> None:
    validator = _validator_of_the_installed_package()
    resource = json.loads(path.read_text(encoding="utf-8"))
    result = validator.validate(resource)
    assert result.errors == []
    # Their profiles are found (an unknown profile would be a warning), UK Core's bases among them.
    assert [w for w in result.warnings if "unknown" in w.message.lower()] == []


def test_every_file_of_the_installed_package_validates(cache_home: Path) -> None:
    """The package's own resources (the STarT Back Questionnaire's SDC extensions included) are valid FHIR
    against R4, UK Core and the SDC and extensions-pack definitions: no error, no unknown extension."""
    validator = _validator_of_the_installed_package()
    folder = cache_home / ".fhir" / "packages" / SPEC / "package"
    for path in sorted(folder.glob("*.json")):
        if path.name in ("package.json", ".index.json"):
            continue
        result = validator.validate(json.loads(path.read_text(encoding="utf-8")))
        assert result.errors == [], path.name
        assert [w for w in result.warnings if "unknown" in w.message.lower()] == [], path.name


def test_cli_loads_the_installed_package_by_name_and_version(package_home: Path) -> None:
    cache_home = package_home
    env = {**os.environ, "HOME": str(cache_home)}
    files = [str(p) for p in EXAMPLE_FILES]
    done = subprocess.run(
        [str(COMMAND), "validate", "--package", SPEC, *files], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not found" not in done.stdout + done.stderr
    absent = {**env, "HOME": str(cache_home / "elsewhere")}
    missing = subprocess.run(
        [str(COMMAND), "validate", "--package", SPEC, files[0]], env=absent, capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2 and f"package {SPEC} not found" in missing.stderr, missing.stderr


def test_server_loads_the_installed_package_by_name_and_version(package_home: Path, tmp_path: Path) -> None:
    cache_home = package_home
    server = Server(
        f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "server.log", {"HOME": str(cache_home)}, ["--package", SPEC]
    )
    try:
        server.wait()
        questionnaire = (ROOT / "profiles" / "Questionnaire-startback.json").read_bytes()
        answer = httpx.post(
            f"{server.url}/Questionnaire/$validate",
            content=questionnaire,
            headers={"Content-Type": "application/fhir+json"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        issues = answer.json()["issue"]
        assert [i for i in issues if i["severity"] in ("error", "fatal")] == []
        # The SDC extensions and itemWeight are known (the package's dependencies, built in here).
        unknown = [i for i in issues if "extension" in i.get("diagnostics", "") and "unknown" in i["diagnostics"]]
        assert unknown == []
    finally:
        server.stop()
