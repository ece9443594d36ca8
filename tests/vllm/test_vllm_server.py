"""Real vLLM OpenAI server (``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1) with
``--middleware auditlog.integrations.vllm.VllmAuditMiddleware`` and the plugin enabled by the
environment (``AUDITLOG_VLLM=1``).

Concurrent completions, streamed and not, with ``return_token_ids`` so the client sees the token
ids: each vLLM trail MUST equal, token for token, what the client received (C2, C6), carry the
caller's tenant, principal and ``x-request-id`` (C3, C19), and the middleware's request-level
trail ``<tenant>/<x-request-id>`` (log ``<origin>/http``) MUST hold the same text and the same
token ids (as marked ``token_ids`` fields); step
manifests reconcile (C11);
``auditlog verify`` exits 0 (C8). Fail-closed (C21) with a draft model: each streamed chunk's
tokens MUST already be committed when the client reads the chunk; fail-open without a draft.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from vllm_checks import auditlog_verify, check_step_manifests
from vllm_models import make_draft_from, make_model

from auditlog.crypto import open_keyring
from auditlog.ledger import Signer, parse_header
from auditlog.store import create_db_engine, get_log_id, iter_records
from auditlog.trails import Trail, read_trail

ORIGIN = "vllm.test.invalid/server"
API_KEY = "sk-test-acme"
MIDDLEWARE = "auditlog.integrations.vllm.VllmAuditMiddleware"
STARTUP_S = 300


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    target = make_model(root / "target", layers=2, seed=0)
    return target, make_draft_from(target, root / "draft")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp: Path, target: Path, draft: Path | None, fail_open: bool) -> tuple[Any, str, str]:
    signer = Signer.generate(ORIGIN)
    (tmp / "key").write_text(signer.key_string)
    (tmp / "keys.json").write_text(json.dumps(
        {"keys": [{"key": API_KEY, "tenant": "acme-bank", "principal": "svc-chat@acme"}]}
    ))  # fmt: skip
    db_url = f"sqlite:///{tmp / 'audit.db'}"
    env = os.environ | {
        "AUDITLOG_VLLM": "1", "AUDITLOG_DB_URL": db_url, "AUDITLOG_KEY_FILE": str(tmp / "key"),
        "AUDITLOG_WITNESS_DIR": str(tmp / "witness"), "AUDITLOG_SPOOL": str(tmp / "spool"),
        "AUDITLOG_API_KEYS": str(tmp / "keys.json"),
        "AUDITLOG_FAIL_OPEN": "1" if fail_open else "0",
        "VLLM_CPU_KVCACHE_SPACE": "1",
    }  # fmt: skip
    port = _free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(target),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
           "--max-model-len", "256", "--enforce-eager", "--seed", "0",
           "--served-model-name", "tiny", "--middleware", MIDDLEWARE]  # fmt: skip
    if draft is not None:
        spec = {"method": "draft_model", "model": str(draft), "num_speculative_tokens": 2}
        cmd += ["--speculative-config", json.dumps(spec),
                "--per-request-spec-decode-metrics", "detailed"]  # fmt: skip
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_S
    while True:
        if proc.poll() is not None:
            raise AssertionError((tmp / "server.log").read_text()[-4000:])
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("vLLM server did not start")
        time.sleep(1)
    return proc, base, signer.verifier_key


def _stop(proc: Any) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def _num_committed_tokens(db_url: str, x_request_id: str) -> int:
    """How many tokens the committed ``tokens`` records of ``x_request_id`` hold right now (read
    from the record headers: the payloads are sealed, and readers show only what a checkpoint
    covers, while C21 is about what is committed). Which tokens they are is checked against the
    client's after the run, on the decrypted trails."""
    engine = create_db_engine(db_url, read_only=True)
    try:
        with engine.connect() as conn:
            headers = [parse_header(r.body) for r in iter_records(conn, get_log_id(conn, ORIGIN))]
    finally:
        engine.dispose()
    request_ids = {h["request_id"] for h in headers if h["kind"] == "request.start"
                   and h.get("params", {}).get("x_request_id") == x_request_id}  # fmt: skip
    return sum(h["n"] for h in headers
               if h["kind"] == "tokens" and h["request_id"] in request_ids)  # fmt: skip


def _complete(
    base: str, rid: str, body: dict[str, Any], durable_db: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    if not rid.startswith(NO_ID):
        headers["X-Request-Id"] = rid
    body = {"model": "tiny", "return_token_ids": True, **body}
    if not body.get("stream"):
        r = httpx.post(f"{base}/v1/completions", json=body, headers=headers, timeout=300)
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        return {"token_ids": choice["token_ids"], "text": choice["text"],
                "finish_reason": choice["finish_reason"],
                "trail_id": r.headers["x-auditlog-request-id"]}  # fmt: skip
    ids: list[int] = []
    text, finish = "", None
    with httpx.stream("POST", f"{base}/v1/completions", json=body, headers=headers,
                      timeout=300) as r:  # fmt: skip
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choice = json.loads(line[6:])["choices"][0]
            ids += choice.get("token_ids") or []
            if durable_db is not None and ids:  # C21: what the client holds is committed
                num_held = _num_committed_tokens(durable_db, rid)
                assert num_held >= len(ids), (rid, num_held, len(ids))
            text += choice.get("text") or ""
            finish = choice.get("finish_reason") or finish
    return {"token_ids": ids, "text": text, "finish_reason": finish}


REQUESTS = {
    "plain-greedy": {"prompt": "Hello world", "max_tokens": 20, "temperature": 0},
    "stream-seeded": {"prompt": "Audit every token", "max_tokens": 24, "temperature": 0.8,
                      "seed": 5, "stream": True},
    "stream-greedy": {"prompt": "a", "max_tokens": 16, "temperature": 0, "stream": True},
    "plain-seeded": {"prompt": "Zebra crossing", "max_tokens": 18, "temperature": 1.0,
                     "seed": 9, "top_p": 0.9},
    "no-id": {"prompt": "No request id", "max_tokens": 10, "temperature": 0},
}  # fmt: skip
NO_ID = "no-id"  # sent without X-Request-Id: the middleware names it auto-<uuid>


def _trails(db_url: str, origin: str) -> list[Trail]:
    """Every trail of ``origin``, decrypted with the keyring the server created beside its key
    file (payloads are sealed by default, C16)."""
    keys = open_keyring(
        Path(db_url.removeprefix("sqlite:///")).parent / "key.keyring", create=False
    )
    engine = create_db_engine(db_url, read_only=True)
    try:
        with engine.connect() as conn:
            ids = [r.request_id for r in iter_records(conn, get_log_id(conn, origin))
                   if r.kind == "request.start"]  # fmt: skip
            return [read_trail(conn, origin, str(i), keys=keys) for i in ids]
    finally:
        engine.dispose()


def _http_content(t: Trail) -> tuple[str, list[int]]:
    """The middleware trail's content text, and the token ids it recorded as marked
    ``token_ids`` fields (``openai_wire``: one step per chunk; marked steps begin with U+001E)."""
    steps: dict[int, bytearray] = {}
    for token, step in zip(t.token_ids, t.steps, strict=True):
        assert token is not None
        steps.setdefault(step, bytearray()).append(token)
    text, ids = "", []
    for raw in steps.values():
        chunk = raw.decode("utf-8")
        if not chunk.startswith("\x1e"):
            text += chunk
        elif chunk.startswith("\x1etoken_ids\x1f"):
            ids += json.loads(chunk.split("\x1f", 1)[1])
    return text, ids


@pytest.mark.parametrize(("speculative", "fail_open"), [(False, True), (True, False)],
                         ids=["plain-fail-open", "draft-fail-closed"])  # fmt: skip
def test_openai_server_with_middleware(
    tmp_path: Path, models: tuple[Path, Path], speculative: bool, fail_open: bool
) -> None:
    target, draft = models
    proc, base, verifier_key = _start(tmp_path, target, draft if speculative else None, fail_open)
    try:
        with ThreadPoolExecutor(len(REQUESTS)) as pool:
            durable_db = None if fail_open else f"sqlite:///{tmp_path / 'audit.db'}"
            futures = {rid: pool.submit(_complete, base, rid, body, durable_db)
                       for rid, body in REQUESTS.items()}  # fmt: skip
            got = {rid: f.result() for rid, f in futures.items()}
    finally:
        _stop(proc)
    db_url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine_trails = {t.start["params"].get("x_request_id"): t for t in _trails(db_url, ORIGIN)}
    http_trails = {t.request_id: t for t in _trails(db_url, f"{ORIGIN}/http")}
    auto_id = got[NO_ID]["trail_id"].split("/", 1)[1]
    assert auto_id.startswith("auto-")
    assert sorted(engine_trails) == sorted([*(r for r in REQUESTS if r != NO_ID), auto_id])
    for rid, client in got.items():
        rid = auto_id if rid == NO_ID else rid
        t = engine_trails[rid]
        assert t.token_ids == client["token_ids"], rid
        assert t.end is not None and t.end["reason"] == client["finish_reason"]
        assert t.tenant == "acme-bank" and t.start["principal"] == "svc-chat@acme"
        assert t.start["params"]["seed"] == REQUESTS.get(rid, {}).get("seed")
        if speculative:
            assert t.start["draft"] is not None
        http = http_trails[f"acme-bank/{rid}"]  # the middleware's trail of the same exchange
        text, marked_ids = _http_content(http)
        assert text == client["text"]
        assert marked_ids == client["token_ids"]  # both logs hold the same token ids
        assert http.start["params"]["x_request_id"] == rid
    if speculative:
        assert any(str(p) == "draft_accepted" for t in engine_trails.values() for p in t.provenance)
    assert check_step_manifests(db_url, ORIGIN) > 0, "no step carried several requests"
    check_step_manifests(db_url, f"{ORIGIN}/http")
    # The request-level log is signed by the same key under its own name (<origin>/http).
    http_key = Signer.from_key_string((tmp_path / "key").read_text()).renamed(f"{ORIGIN}/http")
    auditlog_verify(db_url, verifier_key, tmp_path / "witness", http_key.verifier_key)
