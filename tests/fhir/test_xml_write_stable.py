"""The XML writer's output stays byte for byte what it was when it was made faster (issue 11, speed).

The writer was rewritten for speed; its output must not move. Two checks: every XML file of ours and of the
sender corpus is exactly what the writer makes of it (they are written pretty), and the JSON examples and
senders give the SHA-256 digests (compact and pretty) recorded in ``data/xml_write_sha256.json`` from the
writer before the rewrite (commit b7f0617). If the output changes on purpose, regenerate that file and say
why in the commit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from escape_fhir.fhir.formats import parse
from escape_fhir.fhir.xmlio import json_to_xml, xml_to_json
from tests.helpers import EXAMPLES, ROOT

SENDERS = ROOT / "tests" / "fhir" / "senders"
DIGESTS: dict[str, dict[str, str]] = json.loads((Path(__file__).parent / "data" / "xml_write_sha256.json").read_text())
XML_FILES = sorted((EXAMPLES / "bundles").glob("*.xml")) + sorted(SENDERS.glob("*.xml"))


@pytest.mark.parametrize("path", XML_FILES, ids=lambda p: p.name)
def test_xml_file_written_back_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    assert json_to_xml(xml_to_json(data), pretty=True) == data.removesuffix(b"\n")


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_json_file_written_as_before(name: str) -> None:
    resource = parse((ROOT / name).read_bytes(), "json")
    written = {
        "compact": hashlib.sha256(json_to_xml(resource)).hexdigest(),
        "pretty": hashlib.sha256(json_to_xml(resource, pretty=True)).hexdigest(),
    }
    assert written == DIGESTS[name]


def test_every_json_example_and_sender_has_a_digest() -> None:
    """A new example or sender file is covered too (regenerate the digests when adding one)."""
    files = sorted((EXAMPLES / "bundles").glob("*.json")) + sorted(SENDERS.glob("*.json"))
    readable = [p for p in files if not p.name.endswith(".expect.json")]
    assert readable, "no JSON examples found"
    assert {str(p.relative_to(ROOT)) for p in readable} <= set(DIGESTS)
