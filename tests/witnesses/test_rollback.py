"""Rollback detection by `auditlog verify` alone (C8 "the log truncated", C10).

The attacker is the database administrator (docs/TRUST.md section 2) without the witnesses' keys.
The log was recorded in two sessions, each checkpoint cosigned by real aics-witness processes
(third-party C2SP tlog-witness servers from the test-only environment of
``scripts/witness_env.sh``). The administrator then cuts the log back to the end of the first
session: the newer records, payloads, nodes, checkpoints and their cosignatures are deleted, so
what remains is a consistent, signed, *witnessed* earlier state.

Stored cosignatures cannot tell (the remaining checkpoint is genuinely cosigned): that gap is
asserted here, as docs/TRUST.md states it. The defence is outside the database: the witnesses'
own latest view (``--ask-witnesses``), or a cosigned checkpoint the auditor kept
(``--trusted-checkpoint``). Both turn the verdict into an integrity failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from rollback_attack import truncate_log
from typer.testing import CliRunner
from witness_env import RunningWitness, StartWitnesses

from auditlog.cli import app
from auditlog.ledger import Signer
from auditlog.ledger.witness_policy import WitnessPolicy
from auditlog.recorder import AuditRecorder
from auditlog.synthetic import SyntheticEngine
from auditlog.witnesses import WitnessPool
from auditlog.witnesses.monitor import latest_cosigned

ORIGIN = "test.example/rollback"


def _policy_text(ws: list[RunningWitness], threshold: str) -> str:
    lines = [f"witness w{i} {w.vkey} {w.url}" for i, w in enumerate(ws)]
    members = " ".join(f"w{i}" for i in range(len(ws)))
    return "\n".join([*lines, f"group g {threshold} {members}", "quorum g"])


def _session(db_url: str, signer: Signer, pool: WitnessPool, tmp: Path, seed: int) -> int:
    with AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[signer],
        witnesses=[pool],
        spool_path=tmp / f"spool-{seed}",
        checkpoint_every=25,
        max_batch_events=8,
    ) as recorder:
        for event in SyntheticEngine(seed=seed, prefix=f"s{seed}").run(4):
            recorder.record(event)
    assert pool.wait_idle(60)
    return recorder.stats.records


@pytest.fixture
def two_sessions(db_url: str, tmp_path: Path, witnesses: StartWitnesses) -> dict[str, Any]:
    """Two recorder sessions, every checkpoint cosigned by two witnesses of a 2-of-2 policy."""
    signer = Signer.generate(ORIGIN)
    ws = witnesses(2, {ORIGIN: signer.verifier_key})
    text = _policy_text(ws, "all")
    pool = WitnessPool(db_url, WitnessPolicy.parse(text), timeout_s=5)
    first = _session(db_url, signer, pool, tmp_path, seed=21)
    second = _session(db_url, signer, pool, tmp_path, seed=22)
    pool.close()
    assert pool.state(ORIGIN).witnessed_size == first + second
    policy = tmp_path / "policy.txt"
    policy.write_text(text)
    return {"db": db_url, "key": signer.verifier_key, "policy": policy, "first": first,
            "size": first + second, "witnesses": ws}  # fmt: skip


def _verify(rec: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any]]:
    args = ["verify", "--db", rec["db"], "--key", rec["key"], "--json", *extra]
    result = CliRunner().invoke(app, args)
    assert result.stdout, result.output
    return result.exit_code, orjson.loads(result.stdout)


def _all_findings(out: dict[str, Any]) -> list[str]:
    ledger = [f["code"] for log in out["logs"] for f in log["findings"]]
    return ledger + [f["code"] for f in out.get("witness_findings", [])]


def test_untouched_log_is_intact_when_the_witnesses_are_asked(two_sessions: dict) -> None:
    """The witnesses' latest view equals the database's: intact (0), nothing reported."""
    code, out = _verify(
        two_sessions, "--witness-policy", str(two_sessions["policy"]), "--ask-witnesses"
    )
    assert (code, _all_findings(out)) == (0, [])
    assert out["witnessed_at"] == {ORIGIN: two_sessions["size"]}
    assert out["witnesses_answered"] == {ORIGIN: ["w0", "w1"]}


def test_rollback_to_a_witnessed_state_is_caught_only_with_the_witnesses(
    two_sessions: dict, admin_connection: Any, tmp_path: Path
) -> None:
    """C10 rollback: the database alone cannot tell (0: its remaining checkpoint is genuinely
    cosigned, the documented gap); asking the witnesses (1, witness.rollback naming both sizes)
    or holding a cosigned checkpoint from before the attack (1) catches it."""
    rec = two_sessions
    kept = tmp_path / "kept.note"
    policy = WitnessPolicy.parse(rec["policy"].read_text())
    note = latest_cosigned(policy.witnesses["w0"], ORIGIN)
    assert note is not None
    kept.write_text(note)
    truncate_log(admin_connection, rec["first"])

    code, out = _verify(rec, "--witness-policy", str(rec["policy"]))
    assert (code, out["logs"][0]["size"]) == (0, rec["first"])  # the gap, stated in TRUST.md

    code, out = _verify(rec, "--witness-policy", str(rec["policy"]), "--ask-witnesses")
    assert code == 1 and out["verdict"] == "failed"
    rollbacks = [f for f in out["logs"][0]["findings"] if f["code"] == "witness.rollback"]
    assert len(rollbacks) == 2  # both witnesses cosigned the larger tree
    assert (rollbacks[0]["expected"], rollbacks[0]["actual"]) == (
        str(rec["size"]),
        str(rec["first"]),
    )
    code, out = _verify(rec, "--trusted-checkpoint", str(kept))
    assert code == 1 and "witness.rollback" in _all_findings(out)


def test_whole_log_deleted_is_caught_with_the_witnesses(
    two_sessions: dict, admin_connection: Any
) -> None:
    """The administrator deletes the log outright: the witnesses are asked about the origin the
    --key names, and their checkpoint of a log the database no longer has fails (1)."""
    with admin_connection() as conn:
        for table in ("cosignatures", "checkpoints", "payloads", "records", "nodes"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
        conn.exec_driver_sql("DELETE FROM signing_keys")
        conn.exec_driver_sql("DELETE FROM logs")
    code, out = _verify(
        two_sessions, "--witness-policy", str(two_sessions["policy"]), "--ask-witnesses"
    )
    assert code == 1 and "witness.rollback" in _all_findings(out)


def test_unanswering_witness_leaves_the_rollback_open(
    two_sessions: dict, admin_connection: Any
) -> None:
    """One of the two witnesses of the 2-of-2 policy is down: no quorum answered, so a
    rollback is not excluded. The untouched log is unproven (3, witness.unasked), never intact;
    the truncated one still fails (1) on the answer of the witness that is up."""
    two_sessions["witnesses"][1].stop()
    args = ("--witness-policy", str(two_sessions["policy"]), "--ask-witnesses")
    code, out = _verify(two_sessions, *args)
    assert (code, _all_findings(out)) == (3, ["witness.unasked"])
    truncate_log(admin_connection, two_sessions["first"])
    code, out = _verify(two_sessions, *args)
    assert code == 1 and "witness.rollback" in _all_findings(out)


def test_ask_witnesses_needs_a_policy_with_urls(two_sessions: dict, tmp_path: Path) -> None:
    """Usage errors (2): --ask-witnesses without a policy, or with one whose witnesses have no
    URL."""
    code = CliRunner().invoke(app, ["verify", "--db", two_sessions["db"], "--ask-witnesses"])
    assert code.exit_code == 2 and "--witness-policy" in code.output
    bare = tmp_path / "bare.txt"
    bare.write_text(
        "\n".join(
            " ".join(line.split()[:3])
            for line in two_sessions["policy"].read_text().splitlines()
            if line.startswith("witness")
        )
        + "\ngroup g all w0 w1\nquorum g\n"
    )
    code = CliRunner().invoke(
        app,
        ["verify", "--db", two_sessions["db"], "--witness-policy", str(bare), "--ask-witnesses"],
    )
    assert code.exit_code == 2 and "URLs" in code.output
