"""``POST /v1/requests/{id}/replay``: an auditor of the tenant gets the verdict, another tenant's
auditor a 404 (C19), and both reads are access records (C18)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from replay_helpers import SIGNER, DemoRun, record
from sqlalchemy import select

from auditlog.api import ApiSettings, Role, create_app
from auditlog.api.keys import create_key
from auditlog.ledger import Signer, parse_header
from auditlog.store.db import create_db_engine
from auditlog.store.schema import records

pytestmark = pytest.mark.engine
API_ORIGIN = "test.example/replay-api"


def test_replay_endpoint_scoped_by_tenant_and_access_logged(
    demo_run: DemoRun, db_url: str, tmp_path: Path
) -> None:
    record(db_url, demo_run.events, tmp_path / "spool")
    key_file = tmp_path / "api.key"
    key_file.write_text(Signer(name=API_ORIGIN, seed=bytes(32)).key_string + "\n")
    settings = ApiSettings(
        db_url=db_url,
        api_origin=API_ORIGIN,
        api_signing_key=key_file,
        api_trusted_keys=[SIGNER.verifier_key],
    )
    engine = create_db_engine(db_url)
    rid = demo_run.request_ids[0]
    tenant = demo_run.tenants[rid]
    other = next(t for t in demo_run.tenants.values() if t != tenant)
    with engine.begin() as conn:
        own = create_key(conn, role=Role.AUDITOR, tenants=[tenant], label="own").token
        foreign = create_key(conn, role=Role.AUDITOR, tenants=[other], label="foreign").token
        operator = create_key(conn, role=Role.OPERATOR, tenants=[], label="op").token
    try:
        with TestClient(create_app(settings, engine=engine)) as client:
            path = f"/v1/requests/{rid}/replay"
            ok = client.post(path, headers={"Authorization": f"Bearer {own}"})
            assert ok.status_code == 200, ok.text
            body = ok.json()
            assert (body["status"], body["trust"], body["divergence"]) == (
                "identical",
                "trusted",
                None,
            )
            assert body["num_recorded"] == body["num_replayed"] > 0
            hidden = client.post(path, headers={"Authorization": f"Bearer {foreign}"})
            assert (hidden.status_code, hidden.json()) == (404, {"detail": "request not found"})
            missing = client.post(
                "/v1/requests/no-such-request/replay", headers={"Authorization": f"Bearer {own}"}
            )
            assert missing.json() == hidden.json()  # another tenant's request does not exist
            denied = client.post(path, headers={"Authorization": f"Bearer {operator}"})
            assert denied.status_code == 403
        with engine.connect() as conn:
            bodies = conn.execute(
                select(records.c.body).where(records.c.kind == "access").order_by(records.c.seq)
            ).scalars()
            access = [parse_header(bytes(b)) for b in bodies]
        seen = [(a["endpoint"], a["status"], a.get("request_ids")) for a in access]
        endpoint = "POST /v1/requests/{request_id:path}/replay"
        assert seen[:2] == [(endpoint, 200, [rid]), (endpoint, 404, [rid])]
        assert [s[1] for s in seen] == [200, 404, 404, 403]
    finally:
        engine.dispose()
