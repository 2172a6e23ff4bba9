"""Definition sources: the base R4 model, in-memory resources, folders, package ``.tgz`` files, the cache.

Each source answers ``resource(type, url)`` with the resource or None ("not mine"), and ``all(type)``.
Loading is lazy (https://hl7.org/fhir/packages.html): a package's ``.index.json`` is read when present,
otherwise files are scanned once for their resource type and canonical URL (XML by a cheap look at the
text, parsed in full only when asked for), and a resource is parsed on first use. Nothing is fetched from
the network.

Packages (https://hl7.org/fhir/packages.html#2.1.10.4): a folder or ``.tgz`` holding ``package/`` with
``package.json`` (name, version, dependencies) and the resources; the package cache is
``~/.fhir/packages/<name>#<version>/package``. The dependencies a package declares are looked up in the
cache; ``hl7.fhir.r4.core`` is served by the model shipped with escape-fhir, ``hl7.fhir.r5.core`` (which
UK Core declares for its cross-version extensions) by :mod:`escape_fhir.validation.crossversion`.
"""

from __future__ import annotations

import copy
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path

import orjson

from escape_fhir.errors import EscapeFhirError, Issue
from escape_fhir.fhir import jsonio, xmlio
from escape_fhir.fhir.r4model import R4Model, model
from escape_fhir.validation.definitions import CORE_SD, DefinitionSource, Json, split_canonical

__all__ = [
    "BaseR4Source",
    "FileSource",
    "MemorySource",
    "default_sources",
    "extension_definition",
    "folder_source",
    "package_cache_dir",
    "package_sources",
    "project_source",
    "tgz_source",
]

_KINDS = {"primitive-type": "primitive-type", "complex-type": "complex-type", "resource": "resource"}


class BaseR4Source:
    """Base R4 (4.0.1) StructureDefinitions with snapshots, and required-binding ValueSets, from the model.

    StructureDefinitions are built on first request; ValueSets carry the model's expansion (codes only:
    the model keeps no display text).
    """

    def __init__(self, r4: R4Model | None = None) -> None:
        self._model = r4 or model()
        self._structures: dict[str, Json] = {}

    def resource(self, resource_type: str, url: str) -> Json | None:
        url, version = split_canonical(url)
        if version not in (None, "4.0.1"):
            return None
        if resource_type == "StructureDefinition" and url.startswith(CORE_SD):
            return self._structure(url[len(CORE_SD) :]) or self._extension(url)
        if resource_type == "ValueSet":
            return self._value_set(url)
        return None

    def all(self, resource_type: str) -> Iterable[Json]:
        if resource_type == "StructureDefinition":
            for name in self._model.type_names():
                found = self._structure(name)
                if found is not None:
                    yield found
            for url in self._model.extension_urls():
                extension = self._extension(url)
                if extension is not None:
                    yield extension

    def _structure(self, name: str) -> Json | None:
        if name in self._structures:
            return self._structures[name]
        sd = self._model.structure(name)
        if sd is None:
            return None
        from escape_fhir.validation.snapshot import base_elements

        result: Json = {
            "resourceType": "StructureDefinition",
            "id": name,
            "url": CORE_SD + name,
            "version": self._model.fhir_version,
            "name": name,
            "status": "active",
            "fhirVersion": self._model.fhir_version,
            "kind": _KINDS.get(sd.kind, sd.kind),
            "abstract": sd.abstract,
            "type": sd.type,
            "snapshot": {"element": base_elements(sd)},
        }
        if sd.base:
            result["baseDefinition"] = sd.base if ":" in sd.base else CORE_SD + sd.base
            result["derivation"] = sd.derivation
        self._structures[name] = result
        return result

    def _extension(self, url: str) -> Json | None:
        """A core extension definition (differential only: its snapshot is generated like any profile's)."""
        if url in self._structures:
            return self._structures[url]
        raw = self._model.extension(url)
        if raw is None:
            return None
        name = url.rpartition("/")[2]
        result = extension_definition(url, name, list(raw["context"]), copy.deepcopy(list(raw["elements"])))
        result["version"] = self._model.fhir_version
        if raw.get("contextInvariant"):
            result["contextInvariant"] = list(raw["contextInvariant"])
        self._structures[url] = result
        return result

    def _value_set(self, url: str) -> Json | None:
        codes = self._model.required_codes(url)
        if codes is None:
            return None
        contains = [{"system": system, "code": code} for system in sorted(codes) for code in sorted(codes[system])]
        return {
            "resourceType": "ValueSet",
            "url": url,
            "version": self._model.fhir_version,
            "status": "active",
            "expansion": {"timestamp": "2019-11-01T09:29:23+11:00", "total": len(contains), "contains": contains},
        }


def extension_definition(url: str, name: str, context: list[Json], elements: list[Json]) -> Json:
    """A differential-only extension StructureDefinition (https://hl7.org/fhir/R4/extensibility.html)."""
    return {
        "resourceType": "StructureDefinition",
        "id": name,
        "url": url,
        "name": name,
        "status": "active",
        "fhirVersion": "4.0.1",
        "kind": "complex-type",
        "abstract": False,
        "context": context,
        "type": "Extension",
        "baseDefinition": CORE_SD + "Extension",
        "derivation": "constraint",
        "differential": {"element": elements},
    }


class MemorySource:
    """Resources held in memory (the project's own, built-in definitions, tests), indexed by canonical URL."""

    def __init__(self, resources: Iterable[Json]) -> None:
        self._by_url: dict[tuple[str, str], list[Json]] = {}
        for res in resources:
            url = res.get("url")
            if isinstance(url, str):
                self._by_url.setdefault((str(res.get("resourceType")), url), []).append(res)

    def resource(self, resource_type: str, url: str) -> Json | None:
        base, version = split_canonical(url)
        candidates = self._by_url.get((resource_type, base), [])
        return _pick(candidates, version)

    def all(self, resource_type: str) -> Iterable[Json]:
        for (rtype, _), found in self._by_url.items():
            if rtype == resource_type:
                yield from found


def _pick(candidates: list[Json], version: str | None) -> Json | None:
    """The candidate with this version, or the first when no version is asked for."""
    if version is None:
        return candidates[0] if candidates else None
    return next((c for c in candidates if c.get("version") == version), None)


def project_source() -> MemorySource:
    """The project's own conformance resources: profiles, value sets, code systems, questionnaires.

    Read from ``escape_fhir/data/conformance.json`` (see :func:`project_data`); else computed by
    ``escape_fhir.fhir.conformance.conformance_resources()`` when that module exists, else the project's
    questionnaires alone (the same resources as ``profiles/``, which is generated from them).
    """
    data = project_data()
    if data is not None:
        return MemorySource(data["resources"])
    try:
        from escape_fhir.fhir.conformance import conformance_resources
    except ImportError:
        from escape_fhir.fhir.questionnaires import all_questionnaires

        return MemorySource(all_questionnaires())
    resources: list[Json] = conformance_resources()
    return MemorySource(resources)


def project_manifest() -> Json | None:
    """The project's ``package.json`` (its dependencies, UK Core among them), when the module provides it."""
    data = project_data()
    if data is not None:
        found: Json = data["manifest"]
        return found
    try:
        from escape_fhir.fhir.conformance import package_manifest
    except ImportError:
        return None
    manifest: Json = package_manifest()
    return manifest


def project_data() -> Json | None:
    """``{"manifest": package.json, "resources": [...]}`` as ``scripts/generate.py`` writes it from
    :mod:`escape_fhir.fhir.conformance`; None when the file is absent.

    Reading it (about 1 ms) instead of running that module keeps the domain models and their pydantic
    schemas out of a validation's start-up (0.15 s of ``escape-fhir validate``); tests/test_generated.py
    keeps the file current. Each call gives a fresh copy.
    """
    path = resources.files("escape_fhir").joinpath("data", PROJECT_DATA)
    if not path.is_file():
        return None
    found: Json = orjson.loads(path.read_bytes())
    return found


def default_sources(packages: Iterable[str], *, package_cache: bool = True) -> list[DefinitionSource]:
    """The standard chain (see :func:`escape_fhir.validation.definitions.default_definitions`)."""
    from escape_fhir.validation.crossversion import CrossVersionSource, builtin_extensions

    manifest = project_manifest()
    chain: list[DefinitionSource] = [project_source()]
    chain += package_sources(list(packages), package_cache=package_cache, requires=[manifest] if manifest else [])
    chain += [BaseR4Source(), builtin_extensions(), CrossVersionSource()]
    return chain


#: The project's conformance resources and manifest, in ``escape_fhir/data`` (see project_data).
PROJECT_DATA = "conformance.json"


# ---- files: folders, .tgz packages, the package cache --------------------------------------------------------

#: Resource types worth indexing: the conformance and knowledge resources that have a canonical URL.
CANONICAL_TYPES = frozenset(
    {
        "StructureDefinition",
        "ValueSet",
        "CodeSystem",
        "Questionnaire",
        "NamingSystem",
        "ConceptMap",
        "SearchParameter",
        "OperationDefinition",
        "CapabilityStatement",
        "MessageDefinition",
        "ImplementationGuide",
        "StructureMap",
    }
)
_CORE_PACKAGES = frozenset({"hl7.fhir.r4.core", "hl7.fhir.r5.core"})
#: Other names of one package: UK Core 2.0.0's staging repository names it ``UKCore.R4.STU.02.00.00``
#: (../shared/fhir/ukcore/package.json); the registry id, which the project's package.json declares, is
#: ``fhir.r4.ukcore.stu2``. Loaded under either name, it satisfies a dependency on the other.
PACKAGE_ALIASES = {"UKCore.R4.STU.02.00.00": "fhir.r4.ukcore.stu2"}
#: Dependencies of the project whose definitions it uses are also built in (crossversion.builtin_extensions:
#: the two SDC extensions, itemWeight): taken from the cache when there, not missed when not.
_BUILT_IN_DEPENDENCIES = frozenset({"hl7.fhir.uv.sdc", "hl7.fhir.uv.extensions.r4"})
_XML_ROOT = re.compile(rb"<([A-Za-z]+)[\s>][^>]*xmlns\s*=\s*[\"']http://hl7.org/fhir[\"']")
_XML_URL = re.compile(rb"<url\s+value\s*=\s*\"([^\"]*)\"")
_MAX_FILE = 50 * 1024 * 1024

Loader = Callable[[], bytes]


class FileSource:
    """Resources in files, indexed by (resource type, canonical URL) and parsed on first use.

    ``problems`` lists the files that could not be read or parsed (located at the file name); such a file
    is skipped, never raised.
    """

    def __init__(
        self, name: str, entries: Iterable[tuple[str, str, str, Loader]], manifest: Json | None = None
    ) -> None:
        self.name = name
        #: ``package.json`` of a package (name, version, dependencies), None for a plain folder.
        self.manifest = manifest
        self.problems: list[Issue] = []
        self._index: dict[tuple[str, str], list[tuple[str, Loader]]] = {}
        self._parsed: dict[str, Json | None] = {}
        for resource_type, url, filename, loader in entries:
            self._index.setdefault((resource_type, url), []).append((filename, loader))

    def resource(self, resource_type: str, url: str) -> Json | None:
        base, version = split_canonical(url)
        found = [r for r in (self._load(f, ld) for f, ld in self._index.get((resource_type, base), ())) if r]
        return _pick(found, version)

    def all(self, resource_type: str) -> Iterable[Json]:
        for (rtype, _), files in list(self._index.items()):
            if rtype == resource_type:
                yield from (r for r in (self._load(f, ld) for f, ld in files) if r)

    def urls(self, resource_type: str) -> list[str]:
        """The canonical URLs held for a type, without parsing anything."""
        return [url for rtype, url in self._index if rtype == resource_type]

    def _load(self, filename: str, loader: Loader) -> Json | None:
        if filename not in self._parsed:
            try:
                self._parsed[filename] = _parse(filename, loader())
            except (EscapeFhirError, OSError, tarfile.TarError, ValueError) as e:
                self.problems.append(Issue("error", "exception", f"{self.name}: cannot read {filename}: {e}", filename))
                self._parsed[filename] = None
        return self._parsed[filename]


def _parse(filename: str, data: bytes) -> Json:
    return xmlio.xml_to_json(data) if filename.endswith(".xml") else jsonio.loads(data)


def _sniff(filename: str, data: bytes) -> tuple[str, str] | None:
    """(resource type, canonical URL) of a file, or None when it is not a canonical resource.

    JSON is parsed (orjson, fast); XML is looked at with two regular expressions (root element, first
    ``<url value>``), falling back to a full parse when a ``<contained>`` resource comes first.
    """
    if filename.endswith(".json"):
        doc = orjson.loads(data)  # orjson.JSONDecodeError (a ValueError) for a broken file
        rtype, url = (doc.get("resourceType"), doc.get("url")) if isinstance(doc, dict) else (None, None)
    else:
        root, found = _XML_ROOT.search(data[:4096]), _XML_URL.search(data)
        if root is None or found is None:
            return None
        rtype, url = root.group(1).decode(), found.group(1).decode("utf-8")
        if b"<contained" in data[: found.start()]:
            try:
                doc = xmlio.xml_to_json(data)
            except EscapeFhirError:
                return None
            url = doc.get("url")
    if rtype in CANONICAL_TYPES and isinstance(url, str):
        return str(rtype), url
    return None


def _index_entries(
    files: Iterable[tuple[str, Loader]], index: Json | None, problems: list[Issue]
) -> list[tuple[str, str, str, Loader]]:
    """Index entries from a package ``.index.json`` when given, else by sniffing every file once."""
    by_name = dict(files)
    if index is not None:
        return [
            (str(f["resourceType"]), str(f["url"]), str(f["filename"]), by_name[str(f["filename"])])
            for f in index.get("files", [])
            if f.get("resourceType") in CANONICAL_TYPES and f.get("url") and f.get("filename") in by_name
        ]
    entries = []
    for filename, loader in by_name.items():
        try:
            sniffed = _sniff(filename, loader())
        except (ValueError, OSError) as e:
            sniffed = None
            problems.append(Issue("error", "exception", f"cannot read {filename}: {e}", filename))
        if sniffed is not None:
            entries.append((sniffed[0], sniffed[1], filename, loader))
    return entries


def _reader(path: Path) -> Loader:
    return path.read_bytes


def folder_source(folder: Path, *, recursive: bool = True) -> FileSource:
    """The JSON and XML resources of a folder (and its subfolders unless ``recursive`` is False).

    A FHIR package folder (``package/`` inside, or ``package.json`` beside the files) is read the package
    way: only the top level of ``package/``, indexed by ``.index.json`` when present.
    """
    if (folder / "package" / "package.json").is_file():
        folder, recursive = folder / "package", False
    manifest_file = folder / "package.json"
    manifest = orjson.loads(manifest_file.read_bytes()) if manifest_file.is_file() else None
    index_file = folder / ".index.json"
    index = orjson.loads(index_file.read_bytes()) if index_file.is_file() and not recursive else None
    pattern = "**/*" if recursive else "*"
    files = [
        (str(p.relative_to(folder)), _reader(p))
        for p in sorted(folder.glob(pattern))
        if p.suffix in (".json", ".xml")
        and p.is_file()
        and not _hidden(p.relative_to(folder))
        and p.name != "package.json"
        and p.stat().st_size < _MAX_FILE
    ]
    problems: list[Issue] = []
    source = FileSource(str(folder), _index_entries(files, index, problems), manifest)
    source.problems += problems
    return source


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") or part == "node_modules" for part in relative.parts)


def tgz_source(path: Path) -> FileSource:
    """The resources of a FHIR package ``.tgz``: the top level of its ``package/`` folder.

    A gzipped tar cannot be read at random, so the member bytes are read once, when the source is made.
    """
    members: dict[str, bytes] = {}
    with tarfile.open(path, "r:gz") as tar:
        for info in tar:
            name = info.name.removeprefix("./")
            folder, _, filename = name.rpartition("/")
            if info.isfile() and folder == "package" and filename.endswith((".json", ".xml")):
                extracted = tar.extractfile(info)
                if extracted is not None:
                    members[filename] = extracted.read()
    index = orjson.loads(members.pop(".index.json")) if ".index.json" in members else None
    manifest = orjson.loads(members.pop("package.json")) if "package.json" in members else None
    files = [(name, _bytes_loader(data)) for name, data in sorted(members.items())]
    problems: list[Issue] = []
    source = FileSource(str(path), _index_entries(files, index, problems), manifest)
    source.problems += problems
    return source


def _bytes_loader(data: bytes) -> Loader:
    return lambda: data


def package_cache_dir() -> Path:
    """The FHIR package cache, ``~/.fhir/packages`` (https://hl7.org/fhir/packages.html#2.1.10.3)."""
    return Path.home() / ".fhir" / "packages"


def _cached_package(cache: Path, name: str, version: str | None) -> Path | None:
    """``<cache>/<name>#<version>/package``; without a version, the highest version held."""
    if version is not None:
        found = cache / f"{name}#{version}" / "package"
        return found if found.is_dir() else None
    held = sorted((p for p in cache.glob(f"{name}#*") if (p / "package").is_dir()), key=lambda p: _version_key(p.name))
    return held[-1] / "package" if held else None


def _version_key(dirname: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(x), "") if x.isdigit() else (-1, x) for x in re.split(r"[.\-]", dirname.partition("#")[2]))


def open_package(spec: str, cache: Path | None) -> FileSource:
    """A folder, a ``.tgz``, or ``name#version`` / ``name`` looked up in the package cache."""
    path = Path(spec)
    if path.is_dir():
        return folder_source(path)
    if path.is_file() and path.name.endswith((".tgz", ".tar.gz")):
        try:
            return tgz_source(path)
        except (OSError, EOFError, tarfile.TarError, zlib.error, orjson.JSONDecodeError) as exc:
            unreadable = FileSource(spec, ())
            reason = f"{type(exc).__name__}: {exc}"[:200]
            unreadable.problems.append(Issue("error", "not-found", f"package {spec} cannot be read ({reason})", spec))
            return unreadable
    name, _, version = spec.partition("#")
    found = _cached_package(cache, name, version or None) if cache is not None and "/" not in spec else None
    if found is not None:
        return folder_source(found, recursive=False)
    missing = FileSource(spec, ())
    where = f"in the package cache {cache}" if cache is not None else "(package cache not used)"
    missing.problems.append(
        Issue("error", "not-found", f"package {spec} not found: no such folder or .tgz, nor {where}", spec)
    )
    return missing


def _package_name(name: object) -> str:
    return PACKAGE_ALIASES.get(str(name), str(name))


def package_sources(
    packages: Iterable[str], *, package_cache: bool = True, requires: Iterable[Json] = ()
) -> list[FileSource]:
    """The given packages, then (with ``package_cache``) the dependencies they and ``requires`` (manifests,
    such as the project's own) declare, found in the cache, breadth first. A package whose name is already
    loaded (a UK Core folder given explicitly, say) is not looked up again; a dependency not in the cache
    is a warning on the package that declares it."""
    cache = package_cache_dir() if package_cache else None
    sources = [open_package(spec, cache) for spec in packages]
    requirers = [FileSource(str(m.get("name", "project")), (), m) for m in requires]
    loaded = {_package_name(s.manifest.get("name")) for s in sources if s.manifest} | _CORE_PACKAGES
    queue = [*requirers, *sources]
    while queue and cache is not None:
        current = queue.pop(0)
        for name, version in (current.manifest or {}).get("dependencies", {}).items():
            if _package_name(name) in loaded:
                continue
            loaded.add(_package_name(name))
            dependency = open_package(f"{name}#{version}", cache)
            for alias in (a for a, known in PACKAGE_ALIASES.items() if known == name and dependency.problems):
                held = open_package(f"{alias}#{version}", cache)
                dependency = dependency if held.problems else held
            if dependency.problems and name in _BUILT_IN_DEPENDENCIES:
                continue
            current.problems += [
                Issue("warning", p.code, f"{current.name} depends on {p.message}", p.location)
                for p in dependency.problems
            ]
            if not dependency.problems:
                sources.append(dependency)
                queue.append(dependency)
    return sources + [r for r in requirers if r.problems]
