"""Helpers of the auditor API tests: a store filled through the public recording path
(``AuditRecorder`` fed synthetic engine events), an app over it, and a key of every role."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text

from auditlog.api import ApiSettings, Role, create_app
from auditlog.api.keys import create_key, revoke_key
from auditlog.ledger import Signer
from auditlog.recorder import AuditRecorder
from auditlog.store.db import create_db_engine
from auditlog.synthetic import SyntheticEngine, Truth

ENGINE_ORIGIN = "test.example/engine"
API_ORIGIN = "test.example/api-access"
#: Origin of the administrative log the API writes holds and erasures to (its key's name).
ADMIN_ORIGIN = "test.example/api-admin"
#: A prompt that must come out escaped in HTML and intact in JSON.
HOSTILE_PROMPT = '<script>alert("x")</script> & \u00e9 \n\t\u0001'


def fixed_signer(name: str) -> Signer:
    """A deterministic signing key for ``name``.

    Workaround: seeds whose base64 public key contains '+' are skipped, because
    ``auditlog.store.keys.parse_verifier_key_name`` currently splits the key string on every '+'.
    """
    counter = 0
    while True:
        seed = hashlib.sha256(f"{name}/{counter}".encode()).digest()
        signer = Signer(name=name, seed=seed)
        if signer.verifier_key.count("+") == 2:
            return signer
        counter += 1


@dataclass
class World:
    """A recorded store, the API over it, and keys of every role."""

    db_url: str
    engine: Engine
    engine_signer: Signer
    api_signer: Signer
    truth: dict[str, Truth]
    app: FastAPI
    client: TestClient
    tokens: dict[str, str]
    key_ids: dict[str, str]
    settings: ApiSettings

    def headers(self, who: str, reason: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        if reason is not None:
            headers["X-Audit-Reason"] = reason
        return headers

    def request_of(self, tenant: str) -> str:
        return min(r for r, t in self.truth.items() if t.tenant == tenant)


def record_traffic(
    db_url: str,
    signer: Signer,
    spool: Path,
    *,
    n_requests: int,
    id_prefix: str = "req",
    key_provider: Any = None,
) -> SyntheticEngine:
    """Record ``n_requests`` interleaved requests of 3 tenants; the first has a hostile prompt.
    With ``key_provider`` (a keyring) the payloads are sealed (C16)."""
    synthetic = SyntheticEngine(seed=11, tenants=3, prefix=id_prefix)
    with AuditRecorder.open(
        db_url,
        origin=ENGINE_ORIGIN,
        signers=[signer],
        spool_path=spool,
        checkpoint_every=50,
        key_provider=key_provider,
    ) as recorder:
        first = synthetic.start()
        recorder.record(dataclasses.replace(first, prompt_text=HOSTILE_PROMPT))
        for event in synthetic.run(n_requests - 1):
            recorder.record(event)
    return synthetic


def build_world(
    db_url: str,
    tmp_path: Path,
    *,
    n_requests: int = 12,
    id_prefix: str = "req",
    sealed: bool = False,
) -> World:
    """The API signs holds and erasures with an administrative key (origin ``ADMIN_ORIGIN``);
    ``sealed``: payloads sealed under a keyring the API holds (C16)."""
    engine_signer = fixed_signer(ENGINE_ORIGIN)
    api_signer = fixed_signer(API_ORIGIN)
    admin_key = tmp_path / "admin.key"
    admin_key.write_text(fixed_signer(ADMIN_ORIGIN).key_string + "\n")
    extra: dict[str, Any] = {"api_admin_signing_key": admin_key}
    key_provider = None
    if sealed:
        from auditlog.crypto import LocalKeyring, create_keyring

        keyring = create_keyring(tmp_path / "keyring.json")
        key_provider = LocalKeyring.load(keyring)
        extra["api_keyring"] = keyring
    synthetic = record_traffic(
        db_url,
        engine_signer,
        tmp_path / "spool.jsonl",
        n_requests=n_requests,
        id_prefix=id_prefix,
        key_provider=key_provider,
    )
    key_file = tmp_path / "api.key"
    key_file.write_text(api_signer.key_string + "\n")
    settings = ApiSettings(
        db_url=db_url,
        api_origin=API_ORIGIN,
        api_signing_key=key_file,
        api_trusted_keys=[engine_signer.verifier_key],
        **extra,
    )
    engine = create_db_engine(db_url)
    tokens: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    with engine.begin() as conn:
        for who, role, tenants in (
            ("admin", Role.ADMIN, []),
            ("operator", Role.OPERATOR, []),
            ("auditor0", Role.AUDITOR, ["tenant-0"]),
            ("auditor12", Role.AUDITOR, ["tenant-1", "tenant-2"]),
            ("revoked", Role.AUDITOR, ["tenant-0"]),
        ):
            issued = create_key(conn, role=role, tenants=tenants, label=who)
            tokens[who], key_ids[who] = issued.token, issued.key.id
        revoke_key(conn, key_ids["revoked"])
    app = create_app(settings, engine=engine)
    return World(
        db_url=db_url,
        engine=engine,
        engine_signer=engine_signer,
        api_signer=api_signer,
        truth=synthetic.truth,
        app=app,
        client=TestClient(app),
        tokens=tokens,
        key_ids=key_ids,
        settings=settings,
    )


def insert_record_row(
    conn: Connection,
    log_id: int,
    *,
    seq: int,
    kind: str,
    ts: int,
    leaf: bytes,
    body: bytes,
    request_id: str | None = None,
    req_seq: int | None = None,
    tenant: str | None = None,
) -> None:
    """The database writer's raw INSERT of one ``records`` row (an attacker's forgery: the
    append-only triggers stop UPDATE and DELETE, not INSERT)."""
    conn.execute(
        text(
            "INSERT INTO records (log_id, seq, kind, request_id, req_seq, tenant, ts, leaf, body)"
            " VALUES (:log_id, :seq, :kind, :request_id, :req_seq, :tenant, :ts, :leaf, :body)"
        ),
        {
            "log_id": log_id,
            "seq": seq,
            "kind": kind,
            "request_id": request_id,
            "req_seq": req_seq,
            "tenant": tenant,
            "ts": ts,
            "leaf": leaf,
            "body": body,
        },
    )
