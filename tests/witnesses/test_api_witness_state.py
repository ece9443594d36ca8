"""The checkpoint's witness state in the auditor API and the console (C10, C18, C20).

A log recorded while two real aics-witness processes (third-party C2SP tlog-witness servers from
the test-only environment of ``scripts/witness_env.sh``) cosign its checkpoints and a local RFC
3161 authority (``openssl ts``) timestamps them. The API, configured with the witness policy
(AUDITLOG_WITNESS_POLICY) and the TSA certificate (AUDITLOG_TSA_CERT), shows for a trail's
checkpoint who cosigned it and when, whether the policy holds, and the trusted time; the
console's trail page shows the same. Then the administrator plays the attacker on the stored
anchors: deleted cosignatures make the trail pending, an edited one makes it failed; never
anchored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from tsa_env import LocalTsa, local_tsa
from typer.testing import CliRunner
from witness_env import StartWitnesses

from auditlog.api import ApiSettings, Role, create_app
from auditlog.api.keys import create_key
from auditlog.cli import app
from auditlog.ledger import Signer
from auditlog.ledger.witness_policy import WitnessPolicy
from auditlog.recorder import AuditRecorder
from auditlog.store import create_db_engine
from auditlog.synthetic import SyntheticEngine
from auditlog.witnesses import WitnessPool
from auditlog.witnesses.timestamper import Timestamper

ORIGIN = "test.example/api-witnessed"


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[LocalTsa]:
    with local_tsa(tmp_path / "tsa") as running:
        yield running


@pytest.fixture
def anchored_log(
    db_url: str, tmp_path: Path, witnesses: StartWitnesses, tsa: LocalTsa
) -> dict[str, Any]:
    """A log whose every checkpoint two witnesses cosigned (policy: both) and the TSA stamped."""
    signer = Signer.generate(ORIGIN)
    ws = witnesses(2, {ORIGIN: signer.verifier_key})
    text = "\n".join(
        [*(f"witness w{i} {w.vkey} {w.url}" for i, w in enumerate(ws)), "group g all w0 w1",
         "quorum g"]
    )  # fmt: skip
    pool = WitnessPool(db_url, WitnessPolicy.parse(text), timeout_s=5)
    stamper = Timestamper(db_url, tsa.url)
    synthetic = SyntheticEngine(seed=31, tenants=1)
    with AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[signer],
        witnesses=[pool, stamper],
        spool_path=tmp_path / "spool",
        checkpoint_every=10,
        max_batch_events=8,
    ) as recorder:
        for event in synthetic.run(4):
            recorder.record(event)
    pool.close()
    stamper.close()
    assert stamper.num_failed == 0 and stamper.num_stamped >= 2
    policy = tmp_path / "policy.txt"
    policy.write_text(text)
    api_key = tmp_path / "api.key"
    api_key.write_text(Signer.generate("test.example/api-access").key_string + "\n")
    return {"db": db_url, "signer": signer, "policy": policy, "certs": tsa.certs_pem,
            "api_key": api_key, "request": min(synthetic.truth)}  # fmt: skip


def _client(rec: dict[str, Any], *, configured: bool = True) -> tuple[TestClient, str]:
    settings = ApiSettings(
        db_url=rec["db"],
        api_signing_key=rec["api_key"],
        api_trusted_keys=[rec["signer"].verifier_key],
        witness_policy=rec["policy"] if configured else None,
        tsa_cert=rec["certs"] if configured else None,
    )
    engine = create_db_engine(rec["db"])
    with engine.begin() as conn:
        token = create_key(conn, role=Role.ADMIN, tenants=[], label="admin").token
    engine.dispose()
    return TestClient(create_app(settings)), token


def _sign_in(client: TestClient, token: str) -> int:
    """Sign in through the console's real form (its CSRF token read from the page)."""
    form = client.get("/console/sign-in").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    data = {"api_key": token, "csrf_token": csrf.group(1)}
    return client.post("/console/sign-in", data=data, follow_redirects=False).status_code


def _get(client: TestClient, token: str, path: str) -> dict[str, Any]:
    response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_api_and_console_show_cosignatures_policy_and_trusted_time(
    anchored_log: dict[str, Any],
) -> None:
    """The witness endpoint and the trail's verdict name both witnesses (verified, with their
    times), the policy met and the verified trusted time; the trail is anchored; the console's
    trail page shows the same."""
    client, token = _client(anchored_log)
    with client:
        state = _get(client, token, f"/v1/logs/witnesses?log={ORIGIN}")
        assert sorted(c["witness"] for c in state["cosignatures"]) == ["w0", "w1"]
        assert {c["status"] for c in state["cosignatures"]} == {"verified"}
        assert all(c["time"] > 1_700_000_000 for c in state["cosignatures"])
        assert (state["policy_quorum"], state["policy_satisfied"]) == ("g", True)
        assert state["timestamp"] == "verified" and state["trusted_time"]

        trail = _get(client, token, f"/v1/requests/{anchored_log['request']}")
        verdict = trail["verification"]
        assert verdict["status"] == "anchored", verdict["message"]
        assert verdict["witnesses"] == state  # the trail's checkpoint is the latest one

        assert _sign_in(client, token) == 303
        page = client.get(f"/console/requests/{anchored_log['request']}").text
        assert 'data-status="anchored"' in page
        assert page.count('<li data-status="verified"><code>w') == 2
        assert 'data-satisfied="True"' in page and "quorum <code>g</code> met" in page
        assert f"✔ {state['trusted_time']}" in page

        # C20: the API's bundle carries the cosignatures and the timestamp of its checkpoint.
        bundle = client.get(
            f"/v1/requests/{anchored_log['request']}/bundle",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert bundle.status_code == 200
    path = anchored_log["policy"].with_name("bundle.json")
    path.write_bytes(bundle.content)
    result = CliRunner().invoke(
        app,
        ["verify-bundle", str(path), "--key", anchored_log["signer"].verifier_key, "--json",
         "--witness-policy", str(anchored_log["policy"]), "--tsa-cert", str(anchored_log["certs"])],
    )  # fmt: skip
    out = orjson.loads(result.stdout)
    assert (result.exit_code, out["status"], out["witness_findings"]) == (0, "intact", [])
    assert out["trusted_time"]


def test_without_configuration_anchors_are_shown_unchecked(anchored_log: dict[str, Any]) -> None:
    """No policy and no TSA certificate configured: the stored cosignatures and timestamp are
    listed as unchecked, nothing is claimed for them, and the verdict rests on the log key."""
    client, token = _client(anchored_log, configured=False)
    with client:
        verdict = _get(client, token, f"/v1/requests/{anchored_log['request']}")["verification"]
    assert verdict["status"] == "anchored"
    w = verdict["witnesses"]
    assert {c["status"] for c in w["cosignatures"]} == {"unchecked"}
    assert (w["policy_satisfied"], w["timestamp"], w["trusted_time"]) == (None, "unchecked", None)


def test_deleted_cosignatures_make_the_trail_pending(
    anchored_log: dict[str, Any], admin_connection: Any
) -> None:
    """The administrator deletes the witnesses' cosignatures of the latest checkpoint: the
    policy no longer holds; the trail is pending (never anchored) and says why."""
    with admin_connection() as conn:
        conn.exec_driver_sql(
            "DELETE FROM cosignatures WHERE size = (SELECT max(size) FROM checkpoints)"
        )
    client, token = _client(anchored_log)
    with client:
        verdict = _get(client, token, f"/v1/requests/{anchored_log['request']}")["verification"]
        state = _get(client, token, f"/v1/logs/witnesses?log={ORIGIN}")
    assert verdict["status"] == "pending" and "witness policy" in verdict["message"]
    assert state["cosignatures"] == [] and state["policy_satisfied"] is False


def test_edited_cosignature_or_timestamp_fails_the_trail(
    anchored_log: dict[str, Any], admin_connection: Any
) -> None:
    """An edited cosignature time (the witness's signature no longer verifies) fails the trail
    and is shown invalid; so does a timestamp token moved from another checkpoint, on the same
    running API that had verified (and remembered) the genuine token a moment before."""
    client, token = _client(anchored_log)
    path = f"/v1/requests/{anchored_log['request']}"
    with client:
        assert _get(client, token, path)["verification"]["status"] == "anchored"
        with admin_connection() as conn:
            conn.exec_driver_sql(
                "UPDATE cosignatures SET timestamp = timestamp + 1 "
                "WHERE size = (SELECT max(size) FROM checkpoints) AND witness = 'witness.test/w0'"
            )
        verdict = _get(client, token, path)["verification"]
        assert verdict["status"] == "failed"
        statuses = {c["witness"]: c["status"] for c in verdict["witnesses"]["cosignatures"]}
        assert statuses == {"w0": "invalid", "w1": "verified"}

        with admin_connection() as conn:
            conn.exec_driver_sql(
                "UPDATE cosignatures SET timestamp = timestamp - 1 "
                "WHERE witness = 'witness.test/w0' AND size = (SELECT max(size) FROM checkpoints)"
            )
            assert _get(client, token, path)["verification"]["status"] == "anchored"
            conn.exec_driver_sql(
                "UPDATE timestamps SET response = (SELECT response FROM timestamps t2 "
                "WHERE t2.size = (SELECT min(size) FROM timestamps)) "
                "WHERE size = (SELECT max(size) FROM timestamps)"
            )
        verdict = _get(client, token, path)["verification"]
    assert verdict["status"] == "failed"
    assert (verdict["witnesses"]["timestamp"], verdict["witnesses"]["trusted_time"]) == (
        "invalid",
        None,
    )
