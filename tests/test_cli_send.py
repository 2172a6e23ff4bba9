"""``escape-fhir send FILE --to URL``: exit 0 delivered, 1 refused, 2 bad input, 3 unavailable."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest

from escape_fhir.cli import main
from escape_fhir.transport.headers import decode_b64_json
from tests.api.conftest import free_port
from tests.helpers import EXAMPLES
from tests.transport.peer import Reply, ScriptedPeer, outcome
from tests.transport.token_server import TokenServer, new_key_pair

KNEE = str(EXAMPLES / "bundles" / "knee-gp.message.json")
KNEE_XML = str(EXAMPLES / "bundles" / "knee-gp.message.xml")
ACK = {"resourceType": "Bundle", "type": "message", "id": "ack"}


@pytest.fixture(autouse=True)
def one_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """No client settings from the developer's environment; one attempt, so unavailable is quick."""
    for name in ("TOKEN_URL", "API_KEY", "KID", "PRIVATE_KEY", "BEARER_TOKEN", "ODS_CODE", "ORG_NAME"):
        monkeypatch.delenv(f"ESCAPE_FHIR_CLIENT_{name}", raising=False)
    monkeypatch.setenv("ESCAPE_FHIR_CLIENT_MAX_ATTEMPTS", "1")


def test_delivered_prints_the_answer_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with ScriptedPeer([Reply(200, ACK)]) as peer:
        args = ["--ods", "A1001", "--org-name", "Riverside Surgery", "--correlation-id", "conv-9"]
        code = main(
            ["send", KNEE_XML, "--to", peer.url, *args, "--request-id", "req-9", "--target-service-id", "2000011147"]
        )
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out) == ACK
    assert "delivered (HTTP 200): X-Request-ID req-9, X-Correlation-ID conv-9, 1 attempt(s)" in err
    got = peer.received[0].headers
    assert got["content-type"] == "application/fhir+xml"  # the file's format unless --format says otherwise
    assert (got["x-request-id"], got["x-correlation-id"]) == ("req-9", "conv-9")
    assert decode_b64_json(got["nhsd-end-user-organisation"])["name"] == "Riverside Surgery"
    assert decode_b64_json(got["nhsd-target-identifier"])["value"] == "2000011147"
    assert "authorization" not in got


def test_a_duplicate_is_delivered_too(capsys: pytest.CaptureFixture[str]) -> None:
    with ScriptedPeer([Reply(409, outcome("duplicate", "REC_CONFLICT"))]) as peer:
        code = main(["send", KNEE, "--to", peer.url, "--ods", "A1001", "--format", "xml"])
    assert code == 0 and "already delivered (409 duplicate)" in capsys.readouterr().err
    assert peer.received[0].headers["content-type"] == "application/fhir+xml"


def test_refused_prints_the_operation_outcome_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    refusal = outcome("business-rule", "REC_UNPROCESSABLE_ENTITY", "not an ESCAPE-pain referral")
    with ScriptedPeer([Reply(422, refusal)]) as peer:
        code = main(["send", KNEE, "--to", peer.url, "--ods", "A1001"])
    out, err = capsys.readouterr()
    assert code == 1 and json.loads(out) == refusal
    assert err.startswith("error: the receiver refused the message: HTTP 422: REC_UNPROCESSABLE_ENTITY")


def test_unavailable_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["send", KNEE, "--to", f"http://127.0.0.1:{free_port()}", "--ods", "A1001", "--request-id", "r-3"])
    err = capsys.readouterr().err
    assert code == 3 and "unavailable after 1 attempt(s)" in err and "X-Request-ID r-3" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([str(EXAMPLES / "referrals" / "knee-gp.json")], "resourceType", id="not-fhir"),
        pytest.param(
            [str(EXAMPLES / "bundles" / "knee-gp.message.json").replace("gp", "zz")], "cannot read", id="no-file"
        ),
        pytest.param([KNEE, "--to", "ftp://x"], "http(s) URL", id="bad-url"),
        pytest.param([KNEE, "--ods", ""], "ODS code is required", id="no-ods"),
    ],
)
def test_bad_input_exits_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["send", *args]
    argv += [] if "--to" in args else ["--to", "http://127.0.0.1:9"]
    argv += [] if "--ods" in args else ["--ods", "A1001"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_transaction_bundle_is_not_sent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction"}))
    assert main(["send", str(path), "--to", "http://127.0.0.1:9", "--ods", "A1001"]) == 2
    assert "not a message Bundle" in capsys.readouterr().err


def test_incomplete_auth_settings_exit_2_without_echoing_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "auth.json"
    config.write_text(json.dumps({"token_url": "http://127.0.0.1:9/oauth2/token", "api_key": "k-secret-value"}))
    assert main(["send", KNEE, "--to", "http://127.0.0.1:9", "--ods", "A1001", "--auth-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "missing: kid, private_key" in err and "k-secret-value" not in err


def test_signed_jwt_from_an_auth_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = new_key_pair()
    key_file = tmp_path / "private.pem"
    key_file.write_text(keys.private_pem)
    with TokenServer(audience="https://receiver.test") as issuer, ScriptedPeer([Reply(200, ACK)]) as peer:
        issuer.register("cli-api-key", "cli-kid", keys.public_pem)
        config = {
            "token_url": issuer.token_url,
            "api_key": "cli-api-key",
            "kid": "cli-kid",
            "private_key": str(key_file),
        }
        (tmp_path / "auth.json").write_text(json.dumps({**config, "ods_code": "A1001"}))
        assert main(["send", KNEE, "--to", peer.url, "--auth-config", str(tmp_path / "auth.json")]) == 0
    token = peer.received[0].headers["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, issuer.public_key_pem, algorithms=["RS512"], audience="https://receiver.test")
    assert claims["sub"] == "cli-api-key"
    capsys.readouterr()


def test_signed_jwt_from_the_environment_refused_by_the_token_endpoint_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with TokenServer(audience="https://receiver.test") as issuer:
        issuer.register("env-api-key", "env-kid", new_key_pair().public_pem)  # not the key the client holds
        for name, value in {"TOKEN_URL": issuer.token_url, "API_KEY": "env-api-key", "KID": "env-kid"}.items():
            monkeypatch.setenv(f"ESCAPE_FHIR_CLIENT_{name}", value)
        monkeypatch.setenv("ESCAPE_FHIR_CLIENT_PRIVATE_KEY", new_key_pair().private_pem)
        monkeypatch.setenv("ESCAPE_FHIR_CLIENT_ODS_CODE", "A1001")
        assert main(["send", KNEE, "--to", "http://127.0.0.1:9"]) == 1
    assert "token endpoint refused the client assertion: HTTP 401 invalid_client" in capsys.readouterr().err
