"""The XML writer's compiled fast path (``escape_fhir.fhir._xmlwrite``, issue 11) against the Python writer.

:func:`xmlio.json_to_xml` tries the compiled writer first; it must write exactly the Python writer's bytes
(:func:`xml_write.write`, the reference) or hand the resource back (None), never anything else, so that every
error stays the Python writer's. Checked on every resource in the repository (JSON files, resources inside
JSON test cases, the JSON form of every XML file), compact and pretty, and on generated variations (decimals,
big integers, booleans, unicode, characters to escape or refuse, a primitive's ``_name`` with ``null``
alignment, contained resources, narrative, keys out of order) and broken ones (unknown keys, wrong types,
``null``...), which must give the same FhirFormatError as the Python writer alone.
"""

from __future__ import annotations

import collections
import enum
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir import xml_write, xmlio
from escape_fhir.fhir.jsonio import RawDecimal, decimal_from_text
from escape_fhir.fhir.jsonio import loads as json_loads
from tests.helpers import EXAMPLES, ROOT

try:
    from escape_fhir.fhir import _xmlwrite
except ImportError:  # pragma: no cover - depends on the build
    _xmlwrite = None  # type: ignore[assignment]

needs_native = pytest.mark.skipif(
    _xmlwrite is None,
    reason="escape_fhir.fhir._xmlwrite is not built (no C compiler, or ESCAPE_FHIR_PURE=1): "
    "json_to_xml uses the Python writer alone",
)
pytestmark = needs_native

_SKIP_DIRS = {".git", ".venv", "node_modules", "frontend", "static", "__pycache__", ".hypothesis"}


def _outcome(resource: Any, pretty: bool) -> bytes | tuple[str, str, str]:
    """What the Python writer alone makes of ``resource``: bytes, or the error it raises."""
    try:
        return xml_write.write(resource, pretty=pretty)
    except FhirFormatError as e:
        return ("FhirFormatError", str(e), e.location)
    except Exception as e:  # whatever it is, json_to_xml must raise the same
        return (type(e).__name__, str(e), "")


def _json_to_xml_outcome(resource: Any, pretty: bool) -> bytes | tuple[str, str, str]:
    try:
        return xmlio.json_to_xml(resource, pretty=pretty)
    except FhirFormatError as e:
        return ("FhirFormatError", str(e), e.location)
    except Exception as e:
        return (type(e).__name__, str(e), "")


def check_same(resource: Any, pretty: bool) -> bytes | None:
    """Both paths agree on ``resource``; the compiled writer's answer (bytes, or None: handed back)."""
    expected = _outcome(resource, pretty)
    native = _xmlwrite.write(resource, pretty)
    if isinstance(expected, bytes):
        assert native is None or native == expected
    else:
        assert native is None, f"the compiled writer wrote what the Python writer refuses: {expected}"
    assert _json_to_xml_outcome(resource, pretty) == expected
    return native


# --- every resource in the repository ------------------------------------------------------------------


def _resources_in(value: Any) -> list[dict[str, Any]]:
    """The resources (dicts with a string resourceType) anywhere in a JSON value, outermost first."""
    found: list[dict[str, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("resourceType"), str):
                found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _corpus_files() -> list[Path]:
    files = []
    for path in sorted(ROOT.rglob("*")):
        if path.suffix not in (".json", ".xml") or _SKIP_DIRS & set(path.relative_to(ROOT).parts):
            continue
        files.append(path)
    return files


CORPUS = _corpus_files()


def _load(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    if path.suffix == ".xml":
        try:
            return [xmlio.xml_to_json(data)]
        except FhirFormatError:
            return []  # a refused XML case: no JSON form to write
    try:
        value = json_loads(data)
    except FhirFormatError:  # a JSON list (test cases), or not JSON we read: the stdlib, decimals exact
        try:
            value = json.loads(data, parse_float=decimal_from_text)
        except ValueError:
            return []
    return _resources_in(value)


def test_the_corpus_has_resources() -> None:
    # The repository's examples, senders, profiles and test data (a guard against the walk finding nothing).
    assert len(CORPUS) > 150
    assert any(path.parts[-2] == "profiles" for path in CORPUS)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_resource_written_the_same(path: Path) -> None:
    for resource in _load(path):
        for pretty in (False, True):
            check_same(resource, pretty)


def test_the_corpus_is_written_by_the_fast_path() -> None:
    """Every resource of the corpus that the Python writer writes is written by the compiled writer (a
    narrative included): nothing valid falls back."""
    written = with_div = 0
    for path in CORPUS:
        for resource in _load(path):
            if not isinstance(_outcome(resource, False), bytes):
                continue
            for pretty in (False, True):
                assert _xmlwrite.write(resource, pretty) is not None, path
            written += 1
            with_div += '"div"' in json.dumps(resource, default=str)
    assert written > 200
    assert with_div > 0  # narratives too (the generated tests vary them more)


def test_fast_path_taken_for_bundles() -> None:
    """The compiled writer is wired in and writes our message Bundles itself (so its speed cannot quietly
    vanish behind a fallback)."""
    assert xmlio.native_write is _xmlwrite.write
    bundles = sorted((EXAMPLES / "bundles").glob("*.json"))
    assert bundles
    for path in bundles:
        resource = json_loads(path.read_bytes())
        for pretty in (False, True):
            native = _xmlwrite.write(resource, pretty)
            assert native is not None, path.name
            assert native == xml_write.write(resource, pretty=pretty)


def test_without_the_extension_the_python_writer_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = json_loads((EXAMPLES / "bundles" / "knee-gp.message.json").read_bytes())
    expected = xmlio.json_to_xml(resource)
    monkeypatch.setattr(xmlio, "native_write", None)
    assert xmlio.json_to_xml(resource) == expected


# --- strings: each character at each position of the 8-byte scan ------------------------------------------

_PROBES = [chr(c) for c in range(0x80)] + ["é", "€", "\ufffd", "\uef00", "\ufffe", "\uffff", "😀", "\ud800"]


@pytest.mark.parametrize("length", [1, 7, 8, 9, 15, 16, 17])
def test_each_character_at_each_position(length: int) -> None:
    for pos in range(length):
        for char in _PROBES:
            text = "a" * pos + char + "b" * (length - pos - 1)
            patient = {"resourceType": "Patient", "name": [{"id": text, "text": text}]}
            native = check_same(patient, False)
            refused = not isinstance(_outcome(patient, False), bytes)
            assert refused == (native is None), repr(text)


# --- generated variations ------------------------------------------------------------------------------

_SPECIALS = [*"&<>\"'\n\r\t", "😀", "é", "\u2028", "\ufffd"]
_REFUSED = ["\x00", "\x01", "\x0b", "\x1f", "\ufffe", "\uffff", "\ud800", "\udfff"]
SAFE_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from(_SPECIALS), max_size=12)
ANY_TEXT = st.text(st.characters() | st.sampled_from(_SPECIALS + _REFUSED), max_size=12)


def _raw_decimal(text: str) -> Decimal:
    return decimal_from_text(text)


DECIMALS = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, max_value=10**20, min_value=-(10**20)),
    st.sampled_from(["1.50", "0.0", "1e2", "1E+3", "-0", "0.000", "100", "3.14159265358979323846"]).map(_raw_decimal),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
)

DIVS = st.sampled_from(
    [
        '<div xmlns="http://www.w3.org/1999/xhtml">plain</div>',
        '<div xmlns="http://www.w3.org/1999/xhtml"><p class="x">a &amp; b &lt; c</p><br/></div>',
        "<div xmlns='http://www.w3.org/1999/xhtml'>\n  <b>bold</b> &#233;\n</div>",
        '<div xmlns="http://www.w3.org/1999/xhtml"><p></p></div>',
    ]
)


@st.composite
def extensions(draw: st.DrawFn, depth: int = 0) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 2))):
        ext: dict[str, Any] = {"url": draw(SAFE_TEXT.map(lambda t: "http://x/" + t))}
        kind = draw(st.sampled_from(["decimal", "integer", "boolean", "string", "nested"]))
        if kind == "decimal":
            ext["valueDecimal"] = draw(DECIMALS)
        elif kind == "integer":
            ext["valueInteger"] = draw(st.integers(-(2**31), 2**31 - 1))
        elif kind == "boolean":
            ext["valueBoolean"] = draw(st.booleans())
        elif kind == "string" or depth >= 2:
            ext["valueString"] = draw(SAFE_TEXT)
        else:
            ext["extension"] = draw(extensions(depth + 1))
        if draw(st.booleans()):
            ext["id"] = draw(SAFE_TEXT)
        out.append(ext)
    return out


@st.composite
def primitive_extra(draw: st.DrawFn) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if draw(st.booleans()):
        extra["id"] = draw(SAFE_TEXT)
    exts = draw(extensions())
    if exts or not extra:
        extra["extension"] = exts or [{"url": "http://x", "valueBoolean": True}]
    return extra


@st.composite
def human_name(draw: st.DrawFn) -> dict[str, Any]:
    name: dict[str, Any] = {}
    if draw(st.booleans()):
        name["family"] = draw(SAFE_TEXT)
    given = draw(st.lists(st.none() | SAFE_TEXT, max_size=3))
    extras = [draw(st.none() | primitive_extra()) if v is not None else draw(primitive_extra()) for v in given]
    if given and all(v is not None for v in given) and draw(st.booleans()):
        name["given"] = given  # no _given
    elif given:
        name["given"] = given
        name["_given"] = extras
        if all(v is None for v in given) and draw(st.booleans()):
            del name["given"]  # only _given
    if draw(st.booleans()):
        name["id"] = draw(SAFE_TEXT)
    if draw(st.booleans()):
        name["extension"] = draw(extensions())
    return name


@st.composite
def observation(draw: st.DrawFn) -> dict[str, Any]:
    obs: dict[str, Any] = {"resourceType": "Observation", "status": draw(st.sampled_from(["final", "amended"]))}
    obs["id"] = draw(st.from_regex(r"[A-Za-z0-9\-.]{1,16}", fullmatch=True))
    obs["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": draw(SAFE_TEXT)}], "text": draw(SAFE_TEXT)}
    value = draw(st.sampled_from(["quantity", "integer", "boolean", "string", "none"]))
    if value == "quantity":
        obs["valueQuantity"] = {"value": draw(DECIMALS), "unit": draw(SAFE_TEXT)}
    elif value == "integer":
        obs["valueInteger"] = draw(st.integers(-(2**31), 2**31 - 1))
    elif value == "boolean":
        obs["valueBoolean"] = draw(st.booleans())
    elif value == "string":
        obs["valueString"] = draw(SAFE_TEXT)
    if draw(st.booleans()):
        obs["text"] = {"status": "generated", "div": draw(DIVS)}
    return obs


@st.composite
def patient(draw: st.DrawFn) -> dict[str, Any]:
    p: dict[str, Any] = {"resourceType": "Patient"}
    if draw(st.booleans()):
        p["id"] = draw(st.from_regex(r"[A-Za-z0-9\-.]{1,16}", fullmatch=True))
    if draw(st.booleans()):
        p["meta"] = {"versionId": "1", "lastUpdated": "2024-01-02T03:04:05.678+00:00"}
    if draw(st.booleans()):
        p["text"] = {"status": "generated", "div": draw(DIVS)}
    if draw(st.booleans()):
        p["contained"] = draw(st.lists(observation(), min_size=1, max_size=2))
    if draw(st.booleans()):
        p["extension"] = draw(extensions())
    if draw(st.booleans()):
        p["active"] = draw(st.booleans())
    if draw(st.booleans()):
        p["name"] = draw(st.lists(human_name(), max_size=3))
    if draw(st.booleans()):
        p["gender"] = draw(st.sampled_from(["male", "female", "other", "unknown"]))
    birth = draw(st.sampled_from(["value", "extra", "both", "none"]))
    if birth in ("value", "both"):
        p["birthDate"] = "1970-01-01"
    if birth in ("extra", "both"):
        p["_birthDate"] = draw(primitive_extra())
    multiple = draw(st.sampled_from(["integer", "big", "boolean", "none"]))
    if multiple == "integer":
        p["multipleBirthInteger"] = draw(st.integers(0, 10))
    elif multiple == "big":
        p["multipleBirthInteger"] = draw(st.integers(min_value=2**63 - 2, max_value=10**40))
    elif multiple == "boolean":
        p["multipleBirthBoolean"] = draw(st.booleans())
    if draw(st.booleans()):  # properties out of definition order
        keys = draw(st.permutations(list(p)))
        p = {k: p[k] for k in keys}
    return p


@st.composite
def resources(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["patient", "observation", "bundle"]))
    if kind == "patient":
        return draw(patient())
    if kind == "observation":
        return draw(observation())
    entries = draw(st.lists(st.one_of(patient(), observation()), max_size=3))
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(entries)],
    }


class _Code(enum.IntEnum):
    ONE = 1


def _targets(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every dict in ``value``."""
    out = []
    if isinstance(value, dict):
        out.append(path)
        for k, v in value.items():
            out.extend(_targets(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_targets(v, (*path, i)))
    return out


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


_BREAKS: list[tuple[str, Any]] = [
    ("unknown", 1),
    ("resourceType", "Patient"),
    ("active", "true"),
    ("active", 1),
    ("active", None),
    ("birthDate", 19700101),
    ("birthDate", "1970\x0001"),
    ("gender", ["male"]),
    ("multipleBirthInteger", True),
    ("multipleBirthInteger", 1.0),
    ("multipleBirthInteger", Decimal("2")),
    ("multipleBirthInteger", _Code.ONE),
    ("multipleBirthBoolean", True),
    ("name", {"family": "x"}),
    ("name", [None]),
    ("name", [{"given": "x"}]),
    ("name", [{"given": ["a", "b"], "_given": [None]}]),
    ("name", [{"given": [None]}]),
    ("name", [{"given": ["a"], "_given": [{"value": "x"}]}]),
    ("name", [{"_given": ["x"]}]),
    ("name", [{"family": "a\x01"}]),
    ("name", [{"id": "\ud800"}]),
    ("name", [collections.OrderedDict(family="x")]),
    ("_active", "x"),
    ("_active", {"value": True}),
    ("_gender", [{"id": "x"}]),
    ("_name", {"id": "x"}),
    ("extension", [{"url": None}]),
    ("extension", [{"url": "u", "valueDecimal": "1.5"}]),
    ("extension", [{"url": "u", "valueInteger": Decimal("1.5")}]),
    ("extension", [{"url": "u", "valueInteger": 1.5}]),
    ("extension", [{"url": "u", "valueString": "a", "valueBoolean": True}]),
    ("extension", [{"url": "u", "valueDecimal": RawDecimal("1.0")}]),
    ("contained", [{"resourceType": "Nonsense"}]),
    ("contained", [{"status": "final"}]),
    ("contained", {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
    ("contained", [None]),
    ("text", {"status": "generated", "div": "<p>not a div</p>"}),
    ("text", {"status": "generated", "div": "<div>no namespace</div>"}),
    ("text", {"status": "generated", "div": 1}),
    ("code", {"coding": ({"code": "x"},)}),
]


@st.composite
def broken(draw: st.DrawFn) -> dict[str, Any]:
    resource = draw(resources())
    target = _at(resource, draw(st.sampled_from(_targets(resource))))
    key, value = draw(st.sampled_from(_BREAKS))
    target[key] = value
    return resource


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resources(), st.booleans())
def test_generated_resources_written_the_same(resource: dict[str, Any], pretty: bool) -> None:
    native = check_same(resource, pretty)
    if isinstance(_outcome(resource, pretty), bytes):
        assert native is not None, "a valid resource of plain dicts, lists and values fell back"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken(), st.booleans())
def test_broken_resources_same_error(resource: dict[str, Any], pretty: bool) -> None:
    check_same(resource, pretty)


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT, st.sampled_from(["id", "family", "given", "attribute"]))
def test_any_text_written_or_refused_the_same(text: str, where: str) -> None:
    if where == "id":
        resource: dict[str, Any] = {"resourceType": "Patient", "id": text}
    elif where == "family":
        resource = {"resourceType": "Patient", "name": [{"family": text}]}
    elif where == "given":
        resource = {"resourceType": "Patient", "name": [{"given": [text, "x"], "_given": [None, {"id": text}]}]}
    else:
        resource = {"resourceType": "Patient", "extension": [{"url": text, "valueString": text}]}
    check_same(resource, False)


@pytest.mark.parametrize(
    "value",
    [0, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**100, Decimal("1.50"), Decimal("-0"), Decimal("1E+2"), 1e300],
    ids=repr,
)
def test_numbers(value: Any) -> None:
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    resource["valueQuantity"] = {"value": value}
    assert check_same(resource, False) is not None
    resource["valueInteger"] = value
    del resource["valueQuantity"]
    check_same(resource, False)


def test_int_too_long_for_str() -> None:
    # str() of an int of more than 4300 digits raises ValueError: the same error on both paths.
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueInteger": 10**5000}
    assert _xmlwrite.write(resource, False) is None
    with pytest.raises(ValueError):
        xmlio.json_to_xml(resource)


def test_deep_nesting_handed_back() -> None:
    ext: dict[str, Any] = {"url": "u", "valueString": "x"}
    for _ in range(300):
        ext = {"url": "u", "extension": [ext]}
    resource = {"resourceType": "Patient", "extension": [ext]}
    assert _xmlwrite.write(resource, False) is None
    check_same(resource, False)


_CHANGED_WHILE_WRITTEN = """
from escape_fhir.fhir import _xmlwrite

real_parse_div = _xmlwrite._parse_div
div = '<div xmlns="http://www.w3.org/1999/xhtml">a</div>'
for pretty in (False, True):
    contained = {"resourceType": "Patient", "text": {"status": "generated", "div": div}, "name": [{"family": "x"}]}
    resource = {
        "resourceType": "Patient",
        "contained": [contained],
        "name": [{"given": ["a" * 40, "b" * 40], "_given": [None, {"id": "c" * 40}]}],
    }
    del contained

    def emptying(value, loc, resource=resource):
        resource["contained"].clear()
        resource["name"][0]["given"].clear()
        resource["name"][0]["_given"].clear()
        resource.clear()
        return real_parse_div(value, loc)

    _xmlwrite._parse_div = emptying
    out = _xmlwrite.write(resource, pretty)
    assert out is None or out.startswith(b"<?xml"), out
print("ok")
"""


def test_resource_changed_while_written_does_not_crash() -> None:
    """Python code runs inside the compiled writer (the narrative's parser), and with it possibly another
    thread: a resource emptied meanwhile gives some answer, not a crash (the writer keeps references to what
    it uses). Run with Python's debug allocator, which makes a use of freed memory fail every time."""
    env = {**os.environ, "PYTHONMALLOC": "debug"}
    done = subprocess.run(
        [sys.executable, "-c", _CHANGED_WHILE_WRITTEN], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
