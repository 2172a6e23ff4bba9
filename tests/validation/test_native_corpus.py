"""The JSON checks of ``native.NATIVE`` give the FHIRPath engine's verdict on real Bundles and resources.

Every file of the corpus the validator is measured on (bench/validate.py): the project's examples, the sender
corpus (tests/fhir/senders) and, where ../shared is present, the UK Core and BaRS examples. Each is validated
with UK Core and BaRS loaded when present, and wherever the walk checks an invariant natively the same
invariant is also evaluated by the engine on the same element: the verdicts must be identical, no check may
defer to the engine on these files, and none may go to the engine at all (the base resources' invariants of
all these resource types are native; ``engine_calls`` counts what the engine evaluates). ``ele-1`` and
``ext-1``, which the walker checks itself, are compared on every object and every extension too.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from escape_fhir.fhir.formats import parse
from escape_fhir.validation import checks, extensions, invariants
from escape_fhir.validation.api import Validator
from escape_fhir.validation.definitions import default_definitions
from escape_fhir.validation.elements import Node
from escape_fhir.validation.native import Defer
from escape_fhir.validation.walker import Walk
from tests.helpers import EXAMPLES, ROOT, SHARED, shared_files

Json = dict[str, Any]
SENDERS = ROOT / "tests" / "fhir" / "senders"
#: Examples that are not readable FHIR on purpose (validate answers exit 2), so there is nothing to compare.
UNREADABLE = {"Extension-UKCore-ConditionEpisode-Example.xml"}


def _fhir_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix in (".json", ".xml") and not p.name.endswith(".expect.json"))


OURS = [*_fhir_files(EXAMPLES / "bundles"), *_fhir_files(EXAMPLES / "resources"), *_fhir_files(SENDERS)]


@functools.cache
def validator() -> Validator:
    packages = [str(p) for p in (SHARED / "fhir" / "ukcore", SHARED / "fhir" / "bars") if p.is_dir()]
    return Validator(default_definitions(packages))


class Compared:
    """The native and engine verdicts of each natively checked invariant met during one validation."""

    def __init__(self) -> None:
        self.verdicts: Counter[tuple[str, bool]] = Counter()
        self.mismatches: list[str] = []
        self.deferred: list[str] = []

    def invariants(self, value: Any, node: Node, loc: str, walk: Walk) -> list[Any]:
        natives, _ = node.plan if node.plan is not None else checks._plan(node)
        for check, constraint, _message in natives if walk.resources else ():
            key = str(constraint.get("key"))
            try:
                native = check(value, walk.resources[-1], walk.containers[-1])
            except Defer:
                self.deferred.append(f"{key} at {loc}")
                continue
            root = walk.resources[0]
            engine = invariants.engine_holds(value, constraint["expression"], loc, root, walk.resources[-1])
            self.verdicts[key, native] += 1
            if native is not engine:
                self.mismatches.append(f"{key} at {loc}: native {native}, engine {engine}")
        return ORIGINAL(value, node, loc, walk)

    def walker_rules(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Also compare the two invariants the walker checks itself, ele-1 on every object and ext-1 on every
        extension, with the engine's verdict on the same element."""
        walk_object, ext_1 = Walk.object, extensions.extension_has_value_or_children

        def on_object(walk: Walk, obj: Json, scope: Node, loc: str, host: Any) -> None:
            if walk.resources:
                walker = bool(obj) and not (len(obj) == 1 and "id" in obj)
                self.compare_one("ele-1", walker, obj, ELE_1, loc, walk)
            walk_object(walk, obj, scope, loc, host)

        def on_extension(walk: Walk, ext: Json, loc: str) -> None:
            count = len(walk.issues)
            ext_1(walk, ext, loc)
            self.compare_one("ext-1", len(walk.issues) == count, ext, EXT_1, loc, walk)

        monkeypatch.setattr(Walk, "object", on_object)
        monkeypatch.setattr(extensions, "extension_has_value_or_children", on_extension)

    def compare_one(self, key: str, verdict: bool, value: Json, expression: str, loc: str, walk: Walk) -> None:
        engine = invariants.engine_holds(value, expression, loc, walk.resources[0], walk.resources[-1])
        self.verdicts[key, verdict] += 1
        if verdict is not engine:
            self.mismatches.append(f"{key} at {loc}: walker {verdict}, engine {engine}")


ORIGINAL = checks.invariants
ELE_1 = "hasValue() or (children().count() > id.count())"
EXT_1 = "extension.exists() != value.exists()"


def compare(path: Path, monkeypatch: pytest.MonkeyPatch) -> Compared:
    compared = Compared()
    monkeypatch.setattr(checks, "invariants", compared.invariants)
    compared.walker_rules(monkeypatch)
    before = invariants.engine_calls.total()
    validator().validate(parse(path.read_bytes()))
    engine = invariants.engine_calls.total() - before
    assert not compared.mismatches, "\n".join(compared.mismatches)
    assert not compared.deferred, f"deferred to the engine: {compared.deferred}"
    assert engine == 0, f"{engine} invariants went to the FHIRPath engine: {invariants.engine_calls}"
    return compared


def _ids(paths: list[Any]) -> Iterator[Any]:
    for p in paths:
        yield p if not isinstance(p, Path) else pytest.param(p, id=p.name)


@pytest.mark.parametrize("path", list(_ids(OURS)))
def test_native_checks_agree_with_the_engine_on_our_examples_and_the_sender_corpus(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared = compare(path, monkeypatch)
    assert compared.verdicts, "no invariant was checked natively"
    assert compared.verdicts["ele-1", True] > 0


@pytest.mark.parametrize(
    "path", list(_ids(shared_files("fhir", "ukcore", "examples") + shared_files("fhir", "bars", "Examples")))
)
def test_native_checks_agree_with_the_engine_on_uk_core_and_bars_examples(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path.name in UNREADABLE:
        pytest.skip("not readable FHIR (two value[x] in one extension): validate refuses it")
    compare(path, monkeypatch)


def test_the_corpus_makes_the_contained_rules_both_true_and_false(monkeypatch: pytest.MonkeyPatch) -> None:
    """dom-3, txt-1, ele-1 and ext-1 are seen to hold on the corpus; a copy of a corpus Bundle with an
    unreferenced contained resource, a scripted narrative, an element with only an id and an extension with
    both a value and sub-extensions makes each false, natively and in the engine alike."""
    path = SENDERS / "epr-ortho-knees-contained.xml"
    resource = parse(path.read_bytes())
    first = next(e["resource"] for e in resource["entry"] if e["resource"].get("contained"))
    first["contained"].append({"resourceType": "Practitioner", "id": "nobody-refers-to-me"})
    first["text"] = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><script>x</script></div>'}
    first.setdefault("identifier", []).append({"id": "only-an-id"})
    both = {"url": "http://example.org/both", "valueString": "a", "extension": [{"url": "b", "valueString": "b"}]}
    first.setdefault("extension", []).append(both)
    compared = Compared()
    monkeypatch.setattr(checks, "invariants", compared.invariants)
    compared.walker_rules(monkeypatch)
    issues = validator().validate(resource).issues
    assert not compared.mismatches, "\n".join(compared.mismatches)
    assert compared.verdicts["dom-3", False] == 1 and compared.verdicts["dom-3", True] >= 1
    assert compared.verdicts["txt-1", False] == 1 and compared.verdicts["txt-1", True] >= 0
    assert any(i.message.startswith("dom-3") for i in issues)
    assert any(i.message.startswith("txt-1") for i in issues)
    assert compared.verdicts["ele-1", False] == 1 and compared.verdicts["ext-1", False] == 1
    assert compared.verdicts["ext-1", True] >= 1
