"""``Bundle.meta.versionId``, the BaRS application version (nhs-standards.md 1.3): set on what we send, checked
on what we receive. A version of another major is 422 ``not-supported`` (BaRS receiver pseudo-code); a
missing one is 400 ``invariant`` when the Bundle claims BaRS's message profile, else accepted with a warning
(senders that do not follow BaRS send none, and their referrals are not refused for it)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi.testclient import TestClient

from escape_fhir.fhir import codes
from tests.api.conftest import example, message_headers

Json = dict[str, Any]
WHERE = "Bundle.meta.versionId"


def _message(**meta: Any) -> Json:
    bundle: Json = json.loads(example("knee-gp"))
    bundle["id"] = str(uuid.uuid4())
    bundle["meta"] = {k: v for k, v in {**bundle["meta"], **meta}.items() if v is not None}
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "ServiceRequest":
            entry["resource"]["identifier"] = [{"system": codes.ID_REFERRAL, "value": str(uuid.uuid4())}]
    return bundle


def _post(client: TestClient, bundle: Json) -> Any:
    return client.post("/$process-message", content=json.dumps(bundle), headers=message_headers())


def _issues_at(answer: Json, where: str) -> list[Json]:
    if answer["resourceType"] == "OperationOutcome":
        issues: list[Json] = answer["issue"]
    else:
        outcomes = [e["resource"] for e in answer["entry"] if e["resource"]["resourceType"] == "OperationOutcome"]
        issues = [i for o in outcomes for i in o["issue"]]
    return [i for i in issues if where in i.get("expression", [])]


def test_messages_we_send_carry_the_bars_version() -> None:
    assert json.loads(example("knee-gp"))["meta"]["versionId"] == codes.BARS_VERSION_ID


def test_our_version_and_any_minor_of_it_are_accepted_without_a_word(client: TestClient) -> None:
    for version in (codes.BARS_VERSION_ID, "1.1.0", "1.0.0-beta"):
        answer = _post(client, _message(versionId=version))
        assert answer.status_code == 200, answer.text
        assert _issues_at(answer.json(), WHERE) == []
        assert answer.json()["meta"]["versionId"] == version  # the acknowledgement mirrors the request's


def test_another_major_version_is_not_supported(client: TestClient) -> None:
    answer = _post(client, _message(versionId="2.0.0"))
    assert answer.status_code == 422, answer.text
    (issue,) = _issues_at(answer.json(), WHERE)
    assert issue["code"] == "not-supported" and "2.0.0" in issue["diagnostics"]
    assert issue["details"]["coding"][0]["code"] == "REC_UNPROCESSABLE_ENTITY"


def test_missing_version_refused_only_when_the_bundle_claims_bars(client: TestClient) -> None:
    claimed = _message(versionId=None, profile=[codes.PROFILE_MESSAGE, codes.BARS_BUNDLE_PROFILE])
    refused = _post(client, claimed)
    assert refused.status_code == 400, refused.text
    (issue,) = _issues_at(refused.json(), WHERE)
    assert issue["code"] == "invariant" and issue["details"]["coding"][0]["code"] == "REC_BAD_REQUEST"
    plain = _message(versionId=None, profile=None)
    accepted = _post(client, plain)
    assert accepted.status_code == 200, accepted.text
    (warning,) = _issues_at(accepted.json(), WHERE)
    assert warning["severity"] == "warning" and "missing" in warning["diagnostics"]
