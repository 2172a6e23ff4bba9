"""BaRS receiver step 1: with its endpoints configured, the server takes only messages addressed to it."""

from __future__ import annotations

import json

from tests.api.conftest import MakeClient, example, message_headers

KNEE_SERVICE = "https://fhir.nhs.uk/Id/dos-service-id|2000072489"  # examples/referrals/knee-gp.json receiver


def test_a_message_for_one_of_our_endpoints_is_taken(make_client: MakeClient) -> None:
    client = make_client(endpoints=["https://fhir.nhs.uk/Id/dos-service-id|111", KNEE_SERVICE])
    response = client.post("/$process-message", content=example("knee-gp"), headers=message_headers())
    assert response.status_code == 200, response.text


def test_a_message_for_another_service_is_refused_and_nothing_is_stored(make_client: MakeClient) -> None:
    client = make_client(endpoints=["https://fhir.nhs.uk/Id/dos-service-id|111"])
    response = client.post("/$process-message", content=example("knee-gp"), headers=message_headers())
    assert response.status_code == 422
    [issue] = response.json()["issue"]
    assert issue["code"] == "not-supported"
    assert issue["expression"] == ["Bundle.entry[0].resource.destination"]
    assert KNEE_SERVICE in issue["diagnostics"]
    assert client.get("/ServiceRequest").json()["total"] == 0


def test_without_endpoints_any_destination_is_taken(make_client: MakeClient) -> None:
    bundle = json.loads(example("knee-gp"))
    bundle["entry"][0]["resource"]["destination"][0]["endpoint"] = "https://fhir.nhs.uk/Id/dos-service-id|42"
    response = make_client().post("/$process-message", content=json.dumps(bundle), headers=message_headers())
    assert response.status_code == 200, response.text
