"""The canonical content of a message (escape_fhir.fhir.canonical): what makes two deliveries one message."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from escape_fhir.fhir.canonical import canonical_bytes, content_hash, differences
from escape_fhir.fhir.formats import dump, parse
from tests.helpers import EXAMPLES

Json = dict[str, Any]
BUNDLES = sorted((EXAMPLES / "bundles").glob("*.message.json"))


def knee() -> Json:
    return parse((EXAMPLES / "bundles" / "knee-gp.message.json").read_bytes())


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.stem)
def test_json_and_xml_of_each_example_have_one_hash(path: Path) -> None:
    as_json, as_xml = parse(path.read_bytes()), parse(path.with_suffix(".xml").read_bytes())
    assert content_hash(as_json) == content_hash(as_xml)
    assert differences(as_json, as_xml) == []


def restamped(b: Json) -> None:
    b["timestamp"] = "2030-01-01T00:00:00Z"
    b["meta"]["lastUpdated"] = "2030-01-01T00:00:00Z"
    for entry in b["entry"]:
        entry["resource"]["meta"]["lastUpdated"] = "2030-01-01T00:00:00.123Z"


def keys_reversed(b: Json) -> None:
    b["entry"][1]["resource"] = dict(reversed(list(b["entry"][1]["resource"].items())))


SAME: list[Any] = [
    pytest.param(restamped, id="timestamp-and-lastUpdated"),
    pytest.param(keys_reversed, id="key-order"),
]


@pytest.mark.parametrize("change", SAME)
def test_what_a_retry_may_change_does_not_count(change: Callable[[Json], None]) -> None:
    changed = knee()
    change(changed)
    assert content_hash(changed) == content_hash(knee()) and differences(knee(), changed) == []


def test_whitespace_does_not_count() -> None:
    pretty, compact = dump(knee(), "json", pretty=True), json.dumps(json.loads(dump(knee(), "json"))).encode()
    assert content_hash(parse(pretty)) == content_hash(parse(compact))


def set_at(path: list[Any], value: Any) -> Callable[[Json], None]:
    def change(b: Json) -> None:
        target: Any = b
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def drop_entry(b: Json) -> None:
    b["entry"].pop()


def birth_date_extension(b: Json) -> None:
    b["entry"][2]["resource"]["_birthDate"] = {"extension": [{"url": "https://example.org/x", "valueString": "y"}]}


DIFFERENT: list[Any] = [
    pytest.param(
        set_at(["entry", 1, "resource", "priority"], "urgent"), ["Bundle.entry[1].resource.priority"], id="new-element"
    ),
    pytest.param(
        set_at(["entry", 2, "resource", "birthDate"], "1950-01-01"), ["Bundle.entry[2].resource.birthDate"], id="value"
    ),
    pytest.param(birth_date_extension, ["Bundle.entry[2].resource.birthDate"], id="primitive-extension"),
    pytest.param(set_at(["meta", "versionId"], "2.0.0"), ["Bundle.meta.versionId"], id="bars-version"),
    pytest.param(
        set_at(["entry", 1, "resource", "meta", "versionId"], "7"),
        ["Bundle.entry[1].resource.meta.versionId"],
        id="resource-version",
    ),
]


@pytest.mark.parametrize(("change", "where"), DIFFERENT)
def test_a_content_change_is_another_hash_and_is_located(change: Callable[[Json], None], where: list[str]) -> None:
    changed = knee()
    change(changed)
    assert content_hash(changed) != content_hash(knee())
    assert differences(knee(), changed) == where


def test_a_missing_entry_is_located_at_the_entry() -> None:
    changed = knee()
    drop_entry(changed)
    last = len(knee()["entry"]) - 1
    assert differences(knee(), changed) == [f"Bundle.entry[{last}]"]


@pytest.mark.parametrize(
    ("before", "after", "same"),
    [
        pytest.param("1.50", "1.5", False, id="decimal-precision"),
        pytest.param("true", "1", False, id="boolean-is-not-integer"),
        pytest.param("5", "5", True, id="integer"),
    ],
)
def test_primitives_compare_as_written(before: str, after: str, same: bool) -> None:
    a = parse(f'{{"resourceType": "Observation", "valueQuantity": {{"value": {before}}}}}'.encode())
    b = parse(f'{{"resourceType": "Observation", "valueQuantity": {{"value": {after}}}}}'.encode())
    assert (canonical_bytes(a) == canonical_bytes(b)) is same
    assert differences(a, b) == ([] if same else ["Observation.valueQuantity.value"])


def test_differences_stop_at_the_limit_and_the_input_is_not_changed() -> None:
    changed = knee()
    for entry in changed["entry"]:
        entry["resource"]["language"] = "en-GB"
    kept = copy.deepcopy(changed)
    assert len(differences(knee(), changed, limit=3)) == 3
    content_hash(changed)
    assert changed == kept
