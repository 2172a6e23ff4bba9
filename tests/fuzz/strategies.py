"""Hypothesis strategies: mutations of the example Bundles and requests over every route.

A mutation picks one place in an example Bundle and changes what is there: its JSON type, its nesting, a
number (including texts such as ``1e999999``), a string (control characters, NUL, lone surrogates, very
long), a duplicated key, or the number of entries. Documents are written by :func:`write`, which can emit
what ``json.dumps`` cannot: raw number texts and duplicate keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.helpers import ROOT

Json = dict[str, Any]
EXAMPLES = sorted((ROOT / "examples" / "bundles").glob("*.message.json"))
XML_EXAMPLES = sorted((ROOT / "examples" / "bundles").glob("*.message.xml"))


@dataclass(frozen=True)
class RawNumber:
    """A number written exactly as this text."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """An object written with these members in order, keys possibly repeated."""

    items: tuple[tuple[str, Any], ...]


def write(value: Any) -> str:
    """JSON text of ``value`` (iterative enough for the nesting the strategies make)."""
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Text | RawNumber):
            parts.append(item.text)
        elif isinstance(item, Pairs | dict):
            members = item.items if isinstance(item, Pairs) else tuple(item.items())
            todo: list[Any] = [_Text("{")]
            for n, (key, member) in enumerate(members):
                todo += [_Text(("," if n else "") + json.dumps(key, ensure_ascii=False) + ":"), member]
            todo.append(_Text("}"))
            stack.extend(reversed(todo))
        elif isinstance(item, list):
            todo = [_Text("[")]
            for n, member in enumerate(item):
                todo += [_Text(",")] if n else []
                todo.append(member)
            todo.append(_Text("]"))
            stack.extend(reversed(todo))
        else:
            parts.append(json.dumps(item, ensure_ascii=False))  # non-ASCII as it is, as most writers do
    return "".join(parts)


@dataclass(frozen=True)
class _Text:
    text: str


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(value, dict):
        for key, member in value.items():
            found += _paths(member, (*here, key))
    elif isinstance(value, list):
        for i, member in enumerate(value):
            found += _paths(member, (*here, i))
    return found


_LOADED = [json.loads(p.read_bytes()) for p in EXAMPLES]
_PATHS = [_paths(doc)[1:] for doc in _LOADED]

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: RawNumber(str(d))),
    st.sampled_from(
        [
            "1e999999",
            "-1e999999",
            "1e-999999",
            "1E+308",
            "1e309",
            "0.0000",
            "-0",
            "9" * 5000,
            "1." + "0" * 100,
            "4.0",
            "1e3",
        ]
    ).map(RawNumber),
)
strings = st.one_of(
    st.sampled_from(['"\\ud800"', '"a\\udc00"', '"\\u0000"', '"\\ud83d\\ude00"']).map(RawNumber),  # raw escapes
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.sampled_from(
        [
            "\x00",
            "a\x00b",
            "\n2026-01-01 ERROR forged",
            "\x1b[2J",
            "²",
            "٣",
            "9990000018",
            " ",
            "",
            "urn:uuid:",
            'W/"1"',
            "x" * 10_000,
        ]
    ),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def nested(draw: st.DrawFn) -> Any:
    """A value wrapped in up to 1,200 arrays or objects (the depth limit is 400)."""
    depth = draw(st.sampled_from([1, 50, 255, 256, 399, 400, 401, 1000, 1200]))
    as_object = draw(st.booleans())
    value: Any = draw(scalars)
    for _ in range(depth):
        value = {"extension": [value]} if as_object else [value]
    return value


def _replace(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in doc.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(doc)]


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def _duplicate_key(doc: Any, path: tuple[Any, ...], key_value: tuple[str, Any]) -> Any:
    """The object at ``path`` (or its nearest object ancestor) written with one member twice."""
    target = _get(doc, path)
    while not isinstance(target, dict) and path:
        path = path[:-1]
        target = _get(doc, path)
    if not isinstance(target, dict) or not target:
        return doc
    key = next(iter(target)) if key_value[0] not in target else key_value[0]
    items = (*target.items(), (key, key_value[1]))
    return _replace(doc, path, Pairs(items))


@st.composite
def mutated_bundle(draw: st.DrawFn, kind: str | None = None) -> bytes:
    """An example message Bundle (JSON) with one mutation; ``kind`` overrides ``Bundle.type``."""
    n = draw(st.integers(0, len(_LOADED) - 1))
    doc: Any = _LOADED[n]
    if kind is not None:
        doc = {**doc, "type": kind}
    path = draw(st.sampled_from(_PATHS[n]))
    how = draw(st.sampled_from(["type", "nesting", "number", "string", "duplicate", "entries", "delete"]))
    if how == "type":
        doc = _replace(doc, path, draw(values))
    elif how == "nesting":
        doc = _replace(doc, path, draw(nested()))
    elif how == "number":
        doc = _replace(doc, path, draw(numbers))
    elif how == "string":
        doc = _replace(doc, path, draw(strings))
    elif how == "duplicate":
        doc = _duplicate_key(
            doc, path, (draw(st.sampled_from(["value", "system", "resourceType", "id", "x"])), draw(scalars))
        )
    elif how == "entries":
        count = draw(st.sampled_from([0, 1, 999, 1000, 1001, 5000]))
        entry = draw(st.sampled_from([{}, None, 1, doc["entry"][-1]]))
        doc = (
            {**doc, "entry": [*doc["entry"], *([entry] * count)]}
            if draw(st.booleans())
            else {**doc, "entry": [entry] * count}
        )
    else:
        parent, last = path[:-1], path[-1]
        container = _get(doc, parent)
        if isinstance(container, dict):
            doc = _replace(doc, parent, {k: v for k, v in container.items() if k != last})
        else:
            doc = _replace(doc, parent, [v for i, v in enumerate(container) if i != last])
    return write(doc).encode("utf-8", "surrogatepass")


@st.composite
def mangled_bytes(draw: st.DrawFn) -> tuple[bytes, str]:
    """An example (JSON or XML) with bytes cut, inserted or overwritten."""
    path = draw(st.sampled_from([*EXAMPLES, *XML_EXAMPLES]))
    data = bytearray(path.read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["cut", "insert", "overwrite"]))
        chunk = draw(
            st.binary(max_size=8) | st.sampled_from([b"<", b"&", b"{", b'"', b"\x00", b"<!DOCTYPE x>", b"]]>"])
        )
        if how == "cut":
            del data[at : at + draw(st.integers(1, 200))]
        elif how == "insert":
            data[at:at] = chunk
        else:
            data[at : at + len(chunk)] = chunk
    return bytes(data), path.suffix[1:]
