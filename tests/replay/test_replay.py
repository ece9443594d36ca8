"""Deterministic replay of requests from their verified trails (docs/REPLAY.md; C4, C5, C6).

The 24-request demo runs batched once; every request then replays alone, from its trail in the
database, identically. A trail re-signed with one altered token diverges exactly there; a model
whose digest does not match, a run that was not batch-invariant, a missing envelope, no seed and
erased content are refused with their reason. The CLI's exit codes are checked in a subprocess.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from replay_helpers import (
    ORIGIN,
    SIGNER,
    DemoRun,
    alter_draft,
    alter_token,
    record,
    run_demo,
    start_of,
)

from auditlog.bundle.export import export_bundle
from auditlog.bundle.format import Bundle, decode_bundle
from auditlog.bundle.verify import KeyTrust
from auditlog.engine import EngineConfig
from auditlog.engine.llm_engine import DEMO_MODELS_DIR
from auditlog.events import BatchStep, Event, RequestStarted
from auditlog.ledger import Verifier
from auditlog.replay import DEFAULT_MODEL_DIR, ReplayStatus, replay_bundle
from auditlog.store.db import create_db_engine
from auditlog.verifier import verify_database

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[2]
TRUSTED = [Verifier.from_key_string(SIGNER.verifier_key)]


def _bundle(db_url: str, request_id: str) -> Bundle:
    engine = create_db_engine(db_url, read_only=db_url.startswith("sqlite"))
    try:
        with engine.connect() as conn:
            return decode_bundle(export_bundle(conn, request_id))
    finally:
        engine.dispose()


def test_every_demo_request_replays_identically_alone(
    demo_run: DemoRun, db_url: str, tmp_path: Path
) -> None:
    """C5: each request of a batched 24-request demo replays alone, token and provenance equal."""
    assert demo_run.max_batch >= 12  # the requests really shared physical steps
    record(db_url, demo_run.events, tmp_path / "spool")
    provenance: set[str] = set()
    for request_id in demo_run.request_ids:
        result, trust = replay_bundle(_bundle(db_url, request_id), TRUSTED)
        assert (result.status, result.divergence) == (ReplayStatus.IDENTICAL, None), result.reason
        assert trust is KeyTrust.TRUSTED
        assert result.num_recorded == result.num_replayed > 0
        provenance |= {
            p
            for e in demo_run.events
            if isinstance(e, BatchStep)
            for p, r in zip(e.provenance, e.request_ids, strict=True)
            if r == request_id
        }
    assert {"target", "draft_accepted"} <= provenance  # speculative decoding was exercised


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "auditlog", "replay", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_cli_altered_token_diverges_there_bad_digest_refused(
    demo_run: DemoRun, db_url: str, tmp_path: Path
) -> None:
    """A trail re-signed by the log's own key with one token altered verifies (C8 cannot see it)
    but replay exits 1 naming that index; an intact request exits 0; a model directory whose
    weights differ from the recorded digest exits 2 with the reason."""
    victim, other = demo_run.request_ids[3], demo_run.request_ids[4]
    events, original, substitute = alter_token(demo_run.events, victim, 5)
    record(db_url, events, tmp_path / "spool")
    assert verify_database(db_url, keys=[SIGNER.verifier_key], origin=ORIGIN).ok

    key = ("--key", SIGNER.verifier_key)
    altered = _cli("--db", db_url, "--request", victim, *key)
    assert altered.returncode == 1, altered.stderr
    assert f"first divergence at generated token 5: recorded token {substitute} (" in altered.stdout
    assert f"replayed token {original} (" in altered.stdout

    intact = _cli("--db", db_url, "--request", other, *key)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert intact.stdout.startswith(f"identical: request {other}: all ")

    assert DEMO_MODELS_DIR.resolve() == DEFAULT_MODEL_DIR
    bad_dir = tmp_path / "models"
    shutil.copytree(DEFAULT_MODEL_DIR, bad_dir)
    weights = bad_dir / "target" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    bad = _cli("--db", db_url, "--request", other, *key, "--model-dir", str(bad_dir))
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "cannot replay" in bad.stdout and "no target model" in bad.stdout
    assert "has the recorded digests" in bad.stdout


def test_altered_draft_proposal_diverges_at_its_step(
    demo_run: DemoRun, db_url: str, tmp_path: Path
) -> None:
    """C6: a recorded draft proposal (rejected or accepted) that the engine did not propose is
    caught even where the tokens and provenance all match."""
    victim = demo_run.request_ids[6]
    record(db_url, alter_draft(demo_run.events, victim, 1), tmp_path / "spool")
    result, _ = replay_bundle(_bundle(db_url, victim), TRUSTED)
    assert (result.status, result.draft_step, result.divergence) == (
        ReplayStatus.DIVERGENT,
        1,
        None,
    )
    assert result.reason.startswith("draft proposals of the request's speculative step 1 differ")


def _refusal(db_url: str, request_id: str, bundle: Bundle | None = None) -> str:
    result, _ = replay_bundle(bundle or _bundle(db_url, request_id), TRUSTED)
    assert result.status is ReplayStatus.REFUSED, result.reason
    assert result.status.exit_code == 2
    return result.reason


def test_refusals_name_their_reason(demo_run: DemoRun, db_url: str, tmp_path: Path) -> None:
    """Exit 2 with a reason: numerics not batch-invariant, no envelope, no seed, another engine
    version; a trail with a payload removed does not verify and is not replayed."""
    loose = run_demo(2, config=EngineConfig(batch_invariant=False))
    rid_loose = loose.request_ids[0]
    assert start_of(loose.events, rid_loose).replay["batch_invariant"] is False  # type: ignore[index]
    # The same demo events, with the envelope or the seed taken out of two start records.
    rid_bare, rid_seedless, rid_old = demo_run.request_ids[:2] + demo_run.request_ids[5:6]
    edited = []
    for event in demo_run.events:
        if isinstance(event, RequestStarted) and event.request_id == rid_bare:
            event = dataclasses.replace(event, replay=None)
        if isinstance(event, RequestStarted) and event.request_id == rid_old:
            old = {**(event.replay or {}), "engine": "auditlog-reference-engine/0.1"}
            event = dataclasses.replace(event, replay=old)
        if isinstance(event, RequestStarted) and event.request_id == rid_seedless:
            params = {k: v for k, v in event.params.items() if k != "seed"}
            event = dataclasses.replace(event, params=params)
        edited.append(event)
    renamed = [_renamed(e, "loose-") for e in loose.events]
    record(db_url, edited + renamed, tmp_path / "spool")

    assert "not batch-invariant" in _refusal(db_url, "loose-" + rid_loose)
    assert "no replay envelope" in _refusal(db_url, rid_bare)
    assert "no seed" in _refusal(db_url, rid_seedless)
    assert "recorded engine 'auditlog-reference-engine/0.1'" in _refusal(db_url, rid_old)
    # A payload removed from the bundle: until a signed erasure record kind exists (C16), an
    # absent payload is a failure (docs/TRUST.md), so nothing is replayed from such a trail.
    bundle = _bundle(db_url, demo_run.request_ids[2])
    for index in (0, 1):
        records = list(bundle.records)
        records[index] = dataclasses.replace(records[index], payload=None)
        result, _ = replay_bundle(dataclasses.replace(bundle, records=tuple(records)), TRUSTED)
        assert result.status is ReplayStatus.UNVERIFIED, result.reason
        assert "payload absent" in result.reason and result.num_replayed == 0


def _renamed(event: Event, prefix: str) -> Event:
    """The event with every request id prefixed (two runs in one log need distinct ids)."""
    if isinstance(event, BatchStep):
        return dataclasses.replace(
            event,
            step_id=event.step_id + 10_000,
            request_ids=tuple(prefix + r for r in event.request_ids),
            drafts={prefix + r: d for r, d in event.drafts.items()},
        )
    return dataclasses.replace(event, request_id=prefix + event.request_id)


def test_tampered_trail_is_not_replayed(demo_run: DemoRun, db_url: str, tmp_path: Path) -> None:
    """Only what the verifier proved is replayed: a token edited in a payload is UNVERIFIED."""
    record(db_url, demo_run.events, tmp_path / "spool")
    bundle = _bundle(db_url, demo_run.request_ids[0])
    payload = bundle.records[1].payload
    assert payload is not None
    forged = payload.replace(b'"token_ids":[', b'"token_ids":[1', 1)
    tampered = dataclasses.replace(
        bundle,
        records=(
            bundle.records[0],
            dataclasses.replace(bundle.records[1], payload=forged),
            *bundle.records[2:],
        ),
    )
    result, trust = replay_bundle(tampered, TRUSTED)
    assert (result.status, trust, result.status.exit_code) == (ReplayStatus.UNVERIFIED, None, 1)
    assert "payload digest mismatch" in result.reason


def test_importing_replay_loads_no_torch() -> None:
    """STYLE 8: the API imports the replay route at start-up; torch loads on the first replay."""
    code = "import sys, auditlog.replay, auditlog.api.routes.replay; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_recorder_refuses_an_envelope_it_cannot_record_exactly(
    demo_run: DemoRun, db_url: str, tmp_path: Path
) -> None:
    """C5/C7: a float in the envelope would not be canonical; the recorder refuses the event at
    once, with the reason, and keeps recording the others."""
    from auditlog.errors import RecorderError
    from auditlog.recorder import AuditRecorder

    start = start_of(demo_run.events, demo_run.request_ids[0])
    with AuditRecorder.open(
        db_url, origin=ORIGIN, signers=[SIGNER], spool_path=tmp_path / "spool"
    ) as recorder:
        for bad in ({"v": 1, "scale": 0.5}, ["not", "a", "mapping"]):
            event = dataclasses.replace(start, request_id="bad", replay=bad)  # type: ignore[arg-type]
            with pytest.raises(RecorderError, match="replay envelope cannot be recorded exactly"):
                recorder.record(event)
        recorder.record(start)
