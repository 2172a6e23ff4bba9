"""Bearer tokens and scopes; open access only on loopback; no patient data in logs."""

from __future__ import annotations

import logging

import pytest

from escape_fhir.api import create_app
from escape_fhir.settings import Settings, SettingsError
from tests.api.conftest import MakeClient, example, message_headers

SUBMIT = "s" * 12 + "-submitter-0123456789"
TRIAGE = "t" * 12 + "-triager-0123456789ab"


@pytest.fixture
def secured(make_client: MakeClient):  # type: ignore[no-untyped-def]
    return make_client(tokens={SUBMIT: ["submit"], TRIAGE: ["triage", "read"]})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_is_401_a_wrong_scope_403_metadata_open(secured) -> None:  # type: ignore[no-untyped-def]
    r = secured.get("/Task")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["issue"][0]["details"]["coding"][0]["code"] == "REC_UNAUTHORIZED"
    assert secured.get("/Task", headers=bearer("x" * 40)).status_code == 401
    assert secured.get("/Task", headers=bearer(SUBMIT)).status_code == 403
    assert secured.get("/Task", headers=bearer(TRIAGE)).status_code == 200
    posted = secured.post(
        "/$process-message", content=example("knee-gp"), headers={**message_headers(), **bearer(TRIAGE)}
    )
    assert posted.status_code == 403
    posted = secured.post(
        "/$process-message", content=example("knee-gp"), headers={**message_headers(), **bearer(SUBMIT)}
    )
    assert posted.status_code == 200
    assert secured.get("/metadata").json()["rest"][0]["security"]


def test_without_tokens_only_loopback_is_allowed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingsError, match="without bearer tokens"):
        create_app(Settings(host="0.0.0.0", database_url=f"sqlite:///{tmp_path}/db.sqlite3"))
    create_app(Settings(host="0.0.0.0", tokens={SUBMIT: ["submit"]}, database_url=f"sqlite:///{tmp_path}/db.sqlite3"))


@pytest.mark.parametrize("token", ["short", "changeme-changeme-changeme-changeme"])
def test_placeholder_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="random strings"):
        Settings(tokens={token: ["read"]})


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCAPE_FHIR_PORT", "9999")
    monkeypatch.setenv("ESCAPE_FHIR_TOKENS", f'{{"{SUBMIT}": ["submit", "read"]}}')
    settings = Settings()
    assert settings.port == 9999 and set(settings.tokens[SUBMIT]) == {"submit", "read"}


def test_logs_carry_the_correlation_id_and_no_patient_data(client, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="escape_fhir")
    headers = {**message_headers(correlation_id="corr-xyz")}
    assert client.post("/$process-message", content=example("knee-gp"), headers=headers).status_code == 200
    client.get("/ServiceRequest", params={"patient.identifier": "9990000018"}, headers={"X-Correlation-ID": "corr-2"})
    client.get("/Patient/999 000 0018")
    text = "\n".join(f"{r.getMessage()} {getattr(r, 'correlation_id', '')}" for r in caplog.records)
    assert "9990000018" not in text and "999 000 0018" not in text and "Whitfield" not in text
    access = [r for r in caplog.records if r.name == "escape_fhir.access"]
    assert any("/$process-message -> 200" in r.getMessage() for r in access)
