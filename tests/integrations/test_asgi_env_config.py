"""The middleware configured only by environment variables, as ``vllm serve --middleware``
builds it (``AuditMiddleware(app)``): key table, body limit and fail-closed all apply (C3, C21).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from echo_app import RAN, echo_app
from integration_fixtures import serve, trail, trail_text

from auditlog.crypto import LocalKeyring
from auditlog.errors import ConfigurationError
from auditlog.gateway.auth import hash_api_key
from auditlog.integrations.asgi import AuditMiddleware
from auditlog.integrations.settings import MiddlewareConfig
from auditlog.ledger import Signer
from auditlog.recorder import DEFAULT_MAX_PAYLOAD_BYTES
from auditlog.store import create_db_engine
from auditlog.trails import read_trail
from auditlog.verifier import verify_database

ORIGIN = "asgi.test.invalid/env-0"
KEY = "sk-env-configured"


def test_environment_only_configuration(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = Signer.generate(ORIGIN)
    (tmp_path / "signing.key").write_text(signer.key_string)
    keys = {"keys": [{"sha256": hash_api_key(KEY), "tenant": "acme-bank", "principal": "svc"}]}
    (tmp_path / "keys.json").write_text(json.dumps(keys))
    env = {"AUDITLOG_DB_URL": db_url, "AUDITLOG_KEY_FILE": str(tmp_path / "signing.key"),
           "AUDITLOG_API_KEYS": str(tmp_path / "keys.json"), "AUDITLOG_MAX_PAYLOAD_BYTES": "2048",
           "AUDITLOG_SPOOL": str(tmp_path / "env.spool")}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ran = len(RAN)
    with serve(AuditMiddleware(echo_app())) as url:

        def post(body: dict[str, str], key: str) -> httpx.Response:
            headers = {"authorization": f"Bearer {key}", "x-request-id": body["prompt"][:20]}
            return httpx.post(f"{url}/v1/completions", json=body, headers=headers, timeout=30)

        assert post({"model": "plain", "prompt": "no-key"}, "sk-other").status_code == 401
        assert post({"model": "plain", "prompt": "big" + "x" * 4096}, KEY).status_code == 413
        ok = post({"model": "plain", "prompt": "env-ok"}, KEY)
        assert ok.status_code == 200 and ok.json()["choices"][0]["text"] == "ECHO[0]:env-ok"
    assert RAN[ran:] == ["env-ok"]
    # Payloads are sealed by default (C16): the keyring was created next to the signing key.
    assert trail(db_url, ORIGIN, "acme-bank/env-ok").token_ids[0] is None
    keyring = LocalKeyring.load(tmp_path / "signing.key.keyring")
    engine = create_db_engine(db_url, read_only=True)
    with engine.connect() as conn:
        t = read_trail(conn, ORIGIN, "acme-bank/env-ok", keys=keyring)
    engine.dispose()
    ids = [i for i in t.token_ids if i is not None]
    assert len(ids) == len(t.token_ids)  # every token opened
    assert t.reason == "stop" and trail_text(t) == "ECHO[0]:env-ok"
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.ok, report.findings[:3]


def test_bad_body_limit_is_a_configuration_error(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text(Signer.generate(ORIGIN).key_string)
    env = {"AUDITLOG_DB_URL": "sqlite://", "AUDITLOG_KEY_FILE": str(key)}
    for bad in ("0", "-1", "4MiB"):
        with pytest.raises(ConfigurationError, match="AUDITLOG_MAX_PAYLOAD_BYTES"):
            MiddlewareConfig.from_env({**env, "AUDITLOG_MAX_PAYLOAD_BYTES": bad})
    # the former name is refused, never silently ignored (the limit would not be the one set)
    with pytest.raises(ConfigurationError, match="renamed AUDITLOG_MAX_PAYLOAD_BYTES"):
        MiddlewareConfig.from_env({**env, "AUDITLOG_MAX_BODY_BYTES": "2048"})
    assert MiddlewareConfig.from_env(env).max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES == 2**20
