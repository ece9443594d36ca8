"""Finding 11: the semantic rules of auditlog.ledger.chain, enforced by `verify` and by
`verify-bundle` alike, on databases signed by the trusted key itself (a buggy or dishonest
writer): signatures and chains are fine, the content contradicts itself (C6, C11)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import orjson
from trust_helpers import ORIGIN, anchored, codes, verify
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.events import BatchStep, Event, Provenance, RequestFinished
from auditlog.ledger import (
    DirectoryWitness,
    RecordKind,
    Signer,
    canonical_json,
    parse_checkpoint,
    payload_bytes,
    sign_checkpoint,
)
from auditlog.recorder import AuditRecorder, LogSequencer
from auditlog.store import StoredCheckpoint, append_batch, create_db_engine
from auditlog.synthetic import SyntheticEngine


def _record(db_url: str, tmp_path: Path, events: list[Event]) -> dict[str, Any]:
    signer = Signer.generate(ORIGIN)
    witness = tmp_path / "witness"
    with AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[signer],
        witnesses=[DirectoryWitness(witness)],
        spool_path=tmp_path / "spool",
    ) as recorder:
        for event in events:
            recorder.record(event)
    return {"db": db_url, "key": signer.verifier_key, "witness": witness, "signer": signer}


def _events() -> list[Event]:
    return SyntheticEngine(seed=3).run(4)


def _bundle_exit(rec: dict[str, Any], request_id: str, tmp_path: Path) -> int:
    out = tmp_path / "bundle.json"
    runner = CliRunner()
    exported = runner.invoke(
        app, ["export", "--db", rec["db"], "--request", request_id, "--out", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    return runner.invoke(app, ["verify-bundle", str(out), "--key", rec["key"]]).exit_code


def test_honest_recording_is_intact(db_url: str, tmp_path: Path) -> None:
    rec = _record(db_url, tmp_path, _events())
    assert anchored(rec)[0] == 0
    assert _bundle_exit(rec, "req-00000", tmp_path) == 0


def test_n_generated_one_less_than_recorded_tokens_fails(db_url: str, tmp_path: Path) -> None:
    events = _events()
    i = next(i for i, e in enumerate(events) if isinstance(e, RequestFinished))
    end = events[i]
    assert isinstance(end, RequestFinished)
    events[i] = dataclasses.replace(end, n_generated=end.n_generated - 1)
    rec = _record(db_url, tmp_path, events)
    code, report = anchored(rec)
    assert code == 1 and "end.counts" in codes(report)
    assert _bundle_exit(rec, end.request_id, tmp_path) == 1


def test_prov_all_target_while_drafts_were_proposed_fails(db_url: str, tmp_path: Path) -> None:
    events = _events()
    i = next(i for i, e in enumerate(events) if isinstance(e, BatchStep) and e.drafts)
    step = events[i]
    assert isinstance(step, BatchStep)
    events[i] = dataclasses.replace(step, provenance=(Provenance.TARGET,) * len(step.token_ids))
    rec = _record(db_url, tmp_path, events)
    code, report = anchored(rec)
    assert code == 1 and "tokens.prov" in codes(report)
    victim = next(r for r in step.drafts if r in step.request_ids)
    assert _bundle_exit(rec, victim, tmp_path) == 1


def test_step_manifest_in_reversed_batch_order_fails(db_url: str, tmp_path: Path) -> None:
    rec = _record(db_url, tmp_path, _events())
    engine = create_db_engine(db_url)
    with engine.begin() as conn:
        seq = LogSequencer.resume(conn, ORIGIN)
        now = time.time_ns()
        for rid in ("x-1", "x-2"):
            seq.append(
                RecordKind.REQUEST_START,
                ts=now,
                request_id=rid,
                tenant="t",
                payload=payload_bytes({"prompt_token_ids": [1], "prompt_text": "p"}),
                fields={
                    "principal": "p",
                    "client": "c",
                    "engine": "e",
                    "params": {},
                    "target": {
                        k: "x"
                        for k in ("name", "weights_sha256", "tokenizer_sha256", "architecture")
                    },
                    "draft": None,
                },
            )
        for rid in ("x-1", "x-2"):
            seq.append(
                RecordKind.TOKENS,
                ts=now,
                request_id=rid,
                payload=payload_bytes({"token_ids": [5], "drafts": []}),
                fields={"step": 9999, "n": 1, "prov": ["target"]},
            )
        batch = [["x-2", 1], ["x-1", 1]]  # the log holds x-1 first
        seq.append(RecordKind.STEP, ts=now, fields={"step": 9999, "batch": batch, "n": 2})
        for rid in ("x-1", "x-2"):
            seq.append(
                RecordKind.REQUEST_END,
                ts=now,
                request_id=rid,
                fields={"reason": "stop", "n_generated": 1, "n_delivered": 1},
            )
        cp, note = seq.checkpoint([rec["signer"]])
        pending = seq.drain()
        stored = StoredCheckpoint(size=cp.size, root=cp.root, note=note, ts=now)
        append_batch(conn, seq.log_id, pending.records, pending.nodes, checkpoint=stored)
    engine.dispose()
    DirectoryWitness(rec["witness"]).submit(ORIGIN, cp.size, note)
    code, report = anchored(rec)
    assert code == 1 and "step.mismatch" in codes(report)
    message = next(f["message"] for f in report["logs"][0]["findings"])
    assert "another order" in message


def test_verify_bundle_exit_codes(db_url: str, tmp_path: Path) -> None:
    """verify-bundle: no --key proves nothing (3); a --key that did not sign it fails (1);
    payloads nulled fail (1); re-signed by an attacker: 3 without --key, 1 with the real one."""
    rec = _record(db_url, tmp_path, _events())
    out = tmp_path / "b.json"
    runner = CliRunner()
    args = ["export", "--db", rec["db"], "--request", "req-00001", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0

    def run(data: bytes, *keys: str) -> int:
        path = tmp_path / "case.json"
        path.write_bytes(data)
        flags = [x for k in keys for x in ("--key", k)]
        return runner.invoke(app, ["verify-bundle", str(path), *flags]).exit_code

    original = out.read_bytes()
    assert run(original, rec["key"]) == 0
    assert run(original) == 3
    assert run(original, Signer.generate(ORIGIN).verifier_key) == 1
    nulled = orjson.loads(original)
    for record in nulled["records"]:
        record["payload"] = None
    assert run(canonical_json(nulled), rec["key"]) == 1
    attacker = Signer.generate(ORIGIN)
    resigned = orjson.loads(original)
    cp = parse_checkpoint(resigned["checkpoint"].split("\n\n")[0] + "\n")
    resigned["checkpoint"] = sign_checkpoint(cp, [attacker])
    resigned["keys"] = [attacker.verifier_key]
    assert run(canonical_json(resigned)) == 3
    assert run(canonical_json(resigned), rec["key"]) == 1
    assert verify("--db", rec["db"], "--key", rec["key"])[0] == 0
