"""``$validate`` of FHIR XML (issue 11): elements out of definition order and elements FHIR does not define are
error issues of the OperationOutcome (200), located, beside what the validator finds in the rest."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

XML = (
    '<Patient xmlns="http://hl7.org/fhir"><gender value="male"/><active value="true"/><colour value="red"/>'
    '<birthDate value="1958-13-01"/></Patient>'
)


@pytest.mark.parametrize("path", ["/$validate", "/Patient/$validate"])
def test_validate_xml_reports_order_and_unknown_elements(client: TestClient, path: str) -> None:
    r = client.post(path, content=XML, headers={"Content-Type": "application/fhir+xml", "Accept": "application/json"})
    assert r.status_code == 200, r.text[:500]
    errors = {
        (i["expression"][0], i["diagnostics"].split(" (")[0]) for i in r.json()["issue"] if i["severity"] == "error"
    }
    assert ("Patient.active", "element 'active' is out of order") in errors
    assert ("Patient.colour", "unknown element 'colour'") in errors
    assert any(location == "Patient.birthDate" for location, _ in errors)  # the rest was validated too
