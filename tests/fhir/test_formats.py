"""The format entry point: MIME negotiation, sniffing, parse and dump in both formats."""

from __future__ import annotations

import pytest

from escape_fhir.errors import FhirFormatError
from escape_fhir.fhir.formats import MIME, dump, format_from_mime, parse

PATIENT_JSON = b'{"resourceType":"Patient","id":"p1","active":true}'
PATIENT_XML = b'<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><active value="true"/></Patient>'
PATIENT = {"resourceType": "Patient", "id": "p1", "active": True}


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        pytest.param("application/fhir+json", "json", id="fhir-json"),
        pytest.param("application/json", "json", id="json"),
        pytest.param("application/fhir+json; charset=utf-8; fhirVersion=4.0", "json", id="json-with-params"),
        pytest.param("Application/FHIR+JSON;charset=UTF-8", "json", id="json-case"),
        pytest.param("json", "json", id="_format-json"),
        pytest.param("application/fhir+xml", "xml", id="fhir-xml"),
        pytest.param("application/xml", "xml", id="xml"),
        pytest.param("text/xml; charset=utf-8", "xml", id="text-xml"),
        pytest.param("xml", "xml", id="_format-xml"),
        pytest.param("text/html", None, id="html"),
        pytest.param("application/fhir+turtle", None, id="turtle"),
        pytest.param("", None, id="empty"),
    ],
)
def test_format_from_mime(content_type: str, expected: str | None) -> None:
    assert format_from_mime(content_type) == expected


def test_mime_types() -> None:
    assert MIME == {"json": "application/fhir+json", "xml": "application/fhir+xml"}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(PATIENT_JSON, id="json"),
        pytest.param(b"\xef\xbb\xbf \n\t" + PATIENT_JSON, id="json-bom-whitespace"),
        pytest.param(PATIENT_XML, id="xml"),
        pytest.param(b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>\n' + PATIENT_XML, id="xml-bom-declaration"),
        pytest.param(b"\n  " + PATIENT_XML, id="xml-leading-whitespace"),
    ],
)
def test_parse_sniffs_the_format(data: bytes) -> None:
    assert parse(data) == PATIENT


def test_parse_with_explicit_format() -> None:
    assert parse(PATIENT_JSON, "json") == PATIENT
    assert parse(PATIENT_XML, "xml") == PATIENT
    with pytest.raises(FhirFormatError, match="malformed JSON"):
        parse(PATIENT_XML, "json")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"resourceType=Patient", "neither FHIR JSON nor FHIR XML", id="neither"),
        pytest.param(b"   ", "neither FHIR JSON nor FHIR XML", id="blank"),
        pytest.param(b"[1]", "neither FHIR JSON nor FHIR XML", id="json-array"),
        pytest.param(b'{"id": "x"}', "string resourceType", id="no-resourceType"),
        pytest.param(b'{"resourceType": 3}', "string resourceType", id="resourceType-not-string"),
        pytest.param(b"<Patient", "malformed XML", id="broken-xml"),
    ],
)
def test_parse_refuses(data: bytes, message: str) -> None:
    with pytest.raises(FhirFormatError, match=message):
        parse(data)


def test_parse_json_array_with_explicit_format() -> None:
    with pytest.raises(FhirFormatError, match="must be an object"):
        parse(b"[1]", "json")


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_dump_then_parse(fmt: str) -> None:
    assert parse(dump(PATIENT, fmt), fmt) == PATIENT
    assert parse(dump(PATIENT, fmt, pretty=True)) == PATIENT


def test_unknown_format() -> None:
    with pytest.raises(FhirFormatError, match="unknown format"):
        dump(PATIENT, "yaml")
    with pytest.raises(FhirFormatError, match="unknown format"):
        parse(PATIENT_JSON, "yaml")
