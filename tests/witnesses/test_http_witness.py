"""HTTP witnesses (C2SP tlog-witness) against aics-witness, a third-party implementation (C10).

aics-witness runs as a real subprocess on 127.0.0.1 from a separate test-only environment
(``scripts/witness_env.sh``): it declares Python >= 3.12 but runs on 3.11, so it is installed with
``--ignore-requires-python`` and never imported here. Every test plays a log (auditlog's recorder)
against several such witnesses and checks what auditlog does with their answers.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine
from witness_env import StartWitnesses

from auditlog.errors import LogRolledBackError
from auditlog.ledger import Signer
from auditlog.ledger.cosignature import CosignerKey
from auditlog.ledger.note import split_note
from auditlog.ledger.witness_policy import WitnessPolicy
from auditlog.ledger.witnessed import WitnessFindingCode, check_witnessed
from auditlog.recorder import AuditRecorder
from auditlog.store import create_db_engine, get_log_id, list_checkpoints, upgrade
from auditlog.store.cosignatures import list_cosignatures
from auditlog.synthetic import SyntheticEngine
from auditlog.witnesses import WitnessPool

ORIGIN = "test.example/witnessed"


def _policy(witnesses: list, threshold: str) -> WitnessPolicy:  # type: ignore[type-arg]
    lines = [f"witness {w.name.split('/')[-1]} {w.vkey} {w.url}" for w in witnesses]
    members = " ".join(w.name.split("/")[-1] for w in witnesses)
    return WitnessPolicy.parse("\n".join([*lines, f"group g {threshold} {members}", "quorum g"]))


def _record(
    db_url: str, signer: Signer, pool: WitnessPool | None, tmp_path: Path, *, seed: int, n: int
) -> int:
    engine = SyntheticEngine(seed=seed, prefix=f"s{seed}")
    with AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[signer],
        witnesses=[] if pool is None else [pool],
        spool_path=tmp_path / f"spool-{seed}",
        checkpoint_every=25,
        max_batch_events=8,
    ) as recorder:
        for event in engine.run(n):
            recorder.record(event)
    assert pool is None or pool.wait_idle(60)
    return recorder.stats.records


def _stored(db_url: str) -> tuple[dict[int, str], dict[int, list], int]:  # type: ignore[type-arg]
    engine: Engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            log_id = get_log_id(conn, ORIGIN)
            checkpoints = {c.size: split_note(c.note)[0] for c in list_checkpoints(conn, log_id)}
            return checkpoints, list_cosignatures(conn, log_id), max(checkpoints)
    finally:
        engine.dispose()


def test_checkpoints_cosigned_by_two_of_three(
    db_url: str, tmp_path: Path, witnesses: StartWitnesses
) -> None:
    """C10: every checkpoint goes to three real witnesses; each one's cosignature/v1 verifies
    under its key, is stored with its checkpoint, and a 2-of-3 policy counts the log witnessed.
    Recording again later sends `old <size>` with a consistency proof from what each witness
    last cosigned (read back from the stored cosignatures by a new pool)."""
    signer = Signer.generate(ORIGIN)
    ws = witnesses(3, {ORIGIN: signer.verifier_key})
    policy = _policy(ws, "2")
    pool = WitnessPool(db_url, policy)
    _record(db_url, signer, pool, tmp_path, seed=1, n=6)
    state = pool.state(ORIGIN)
    assert state.errors == {}
    assert sorted(state.cosigned_by) == ["w0", "w1", "w2"]
    pool.close()

    pool = WitnessPool(db_url, policy)  # a restart: known sizes come from the database
    _record(db_url, signer, pool, tmp_path, seed=2, n=6)
    pool.close()
    state = pool.state(ORIGIN)
    checkpoints, cosigs, latest = _stored(db_url)
    assert state.errors == {} and state.witnessed_size == latest == state.size
    assert len(cosigs[latest]) == 3
    keys = {CosignerKey.from_key_string(w.vkey) for w in ws}
    for cosig in cosigs[latest]:
        assert any(key.verify(cosig, checkpoints[latest]) for key in keys)
    findings, witnessed = check_witnessed(ORIGIN, latest, checkpoints, cosigs, policy)
    assert findings == [] and witnessed == latest
    # The witnesses saw more than one checkpoint: each later one came with a proof from the last.
    assert len([s for s in cosigs if cosigs[s]]) >= 2


def test_unreachable_witness_never_blocks_and_policy_decides(
    db_url: str, tmp_path: Path, witnesses: StartWitnesses
) -> None:
    """Network failure: one of three witnesses is down. Recording completes; the two live ones
    cosign; 2-of-3 holds, all-of-3 does not (the verdict would be unproven)."""
    signer = Signer.generate(ORIGIN)
    ws = witnesses(3, {ORIGIN: signer.verifier_key})
    ws[2].stop()
    pool = WitnessPool(db_url, _policy(ws, "2"), timeout_s=2)
    _record(db_url, signer, pool, tmp_path, seed=3, n=4)
    pool.close()
    state = pool.state(ORIGIN)
    assert sorted(state.cosigned_by) == ["w0", "w1"] and set(state.errors) == {"w2"}
    checkpoints, cosigs, latest = _stored(db_url)
    assert state.witnessed_size == latest
    assert check_witnessed(ORIGIN, latest, checkpoints, cosigs, _policy(ws, "2"))[0] == []
    findings, _ = check_witnessed(ORIGIN, latest, checkpoints, cosigs, _policy(ws, "all"))
    assert [f.code for f in findings] == [WitnessFindingCode.WITNESS_UNCOVERED]
    assert not findings[0].failed


def test_rollback_is_refused_by_the_witness_and_surfaced(
    tmp_path: Path, witnesses: StartWitnesses
) -> None:
    """A rolled-back database: restored from an earlier copy, the log signs a smaller tree. The
    witness answers 409 with the larger size it cosigned; the pool reports a rollback and stores
    no cosignature for the smaller checkpoint."""
    signer = Signer.generate(ORIGIN)
    ws = witnesses(2, {ORIGIN: signer.verifier_key})
    policy = _policy(ws, "any")
    db = tmp_path / "audit.db"
    upgrade(f"sqlite:///{db}")
    pool = WitnessPool(f"sqlite:///{db}", policy)
    _record(f"sqlite:///{db}", signer, pool, tmp_path, seed=4, n=3)
    pool.close()
    with sqlite3.connect(db) as src, sqlite3.connect(tmp_path / "early.db") as dst:
        src.backup(dst)  # a consistent copy, the write-ahead log included
    pool = WitnessPool(f"sqlite:///{db}", policy)
    _record(f"sqlite:///{db}", signer, pool, tmp_path, seed=5, n=6)
    pool.close()
    # The administrator puts the early copy back; the next checkpoint is smaller than witnessed.
    early = f"sqlite:///{tmp_path / 'early.db'}"
    _, cosigs_before, size_before = _stored(early)
    pool = WitnessPool(early, policy)
    pool.submit(ORIGIN, size_before, _latest_note(early))
    assert pool.wait_idle(60)
    pool.close()
    state = pool.state(ORIGIN)
    assert state.rollback and state.cosigned_by == [] and set(state.errors) == {"w0", "w1"}
    assert "rolled back" in state.errors["w0"]
    assert _stored(early)[1] == cosigs_before


def test_fork_is_refused_by_the_witness_with_422(tmp_path: Path, witnesses: StartWitnesses) -> None:
    """A rewritten log: a second database with the same origin and key but other records grows
    past what the witnesses cosigned. A recorder given the witnesses refuses to start on it
    (they hold a larger tree than its empty log: LogRolledBackError, nothing recorded). Recorded
    without them and its checkpoint then submitted, the consistency proof from the witnesses'
    size cannot verify: both answer 422, nothing is cosigned, and the refusal names the fork."""
    signer = Signer.generate(ORIGIN)
    ws = witnesses(2, {ORIGIN: signer.verifier_key})
    policy = _policy(ws, "all")
    honest, forged = (f"sqlite:///{tmp_path / name}" for name in ("honest.db", "forged.db"))
    for url in (honest, forged):
        upgrade(url)
    pool = WitnessPool(honest, policy)
    _record(honest, signer, pool, tmp_path, seed=6, n=3)
    pool.close()
    pool = WitnessPool(forged, policy)  # knows nothing: it learns each witness's size from 409
    with pytest.raises(LogRolledBackError, match="rolled back; refusing to resume"):
        _record(forged, signer, pool, tmp_path, seed=7, n=12)
    _record(forged, signer, None, tmp_path, seed=7, n=12)
    pool.submit(ORIGIN, _stored(forged)[2], _latest_note(forged))
    assert pool.wait_idle(60)
    pool.close()
    state = pool.state(ORIGIN)
    assert state.cosigned_by == [] and state.witnessed_size is None
    assert all("fork" in error for error in state.errors.values()), state.errors
    assert all(not c for c in _stored(forged)[1].values())


def _latest_note(db_url: str) -> str:
    engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            return list_checkpoints(conn, get_log_id(conn, ORIGIN))[-1].note
    finally:
        engine.dispose()


@pytest.mark.parametrize("status", [404, 403])
def test_unknown_log_and_untrusted_key_are_refusals(
    db_url: str, tmp_path: Path, witnesses: StartWitnesses, status: int
) -> None:
    """404: the witness does not know the origin; 403: it knows the origin under another key.
    Both are refusals (not retried as outages), named in the state, and recording goes on."""
    signer = Signer.generate(ORIGIN)
    other = Signer.generate(ORIGIN)
    logs = (
        {"test.example/other": signer.verifier_key}
        if status == 404
        else {ORIGIN: other.verifier_key}
    )
    ws = witnesses(1, logs)
    pool = WitnessPool(db_url, _policy(ws, "any"))
    records = _record(db_url, signer, pool, tmp_path, seed=8, n=3)
    pool.close()
    assert records > 0
    state = pool.state(ORIGIN)
    assert state.cosigned_by == []
    expected = "does not know this log" if status == 404 else "trusts no signature"
    assert expected in state.errors["w0"]
