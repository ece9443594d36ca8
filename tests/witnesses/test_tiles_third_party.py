"""The tlog-tiles API read by two third-party clients on a log of more than 70,000 records, so
that level-2 tiles (subtrees of 65,536 leaves) and partial tiles at every level occur (C10).

tlog-scales (``TilesReader`` with its HTTP backend) and aics-tlog's verifier CLI run as real
subprocesses from the test-only environment built by ``scripts/witness_env.sh`` (aics-tlog
declares Python >= 3.12 but runs on 3.11 and is installed with ``--ignore-requires-python``);
the auditor API runs under uvicorn on 127.0.0.1. Both read only the public checkpoint and hash
tiles: the roots and proofs they derive must equal auditlog's own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from witness_env import serve_app, witness_python

from auditlog.api import ApiSettings, create_app
from auditlog.ledger import Signer, consistency_proof, inclusion_proof
from auditlog.ledger.tiles import level_count
from auditlog.recorder import AuditRecorder
from auditlog.store import StoredNodeSource, create_db_engine, get_log_id, list_checkpoints
from auditlog.synthetic import SyntheticEngine

ORIGIN = "test.example/tiles"
MIN_RECORDS = 70_000
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A SQLite log of > 70,000 records with two checkpoints (one near the middle), served by
    the auditor API under uvicorn on 127.0.0.1."""
    witness_python()  # skip early (before recording) when the third-party env is absent
    tmp = tmp_path_factory.mktemp("tiles")
    db_url = f"sqlite:///{tmp / 'audit.db'}"
    signer = Signer.generate(ORIGIN)
    engine = SyntheticEngine(seed=15, max_batch=64)
    events = engine.run(5600)
    with AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[signer],
        spool_path=tmp / "spool",
        checkpoint_every=40_000,
        checkpoint_interval_ms=3_600_000,
        max_batch_events=4096,
    ) as recorder:
        for event in events:
            recorder.record(event)
    assert recorder.stats.records > MIN_RECORDS
    api_key = Signer.generate("test.example/api")
    key_file = tmp / "api.key"
    key_file.write_text(api_key.key_string + "\n")
    settings = ApiSettings(
        db_url=db_url,
        api_origin="test.example/api",
        api_signing_key=key_file,
        api_trusted_keys=[signer.verifier_key],
    )
    db = create_db_engine(db_url)
    with db.connect() as conn:
        log_id = get_log_id(conn, ORIGIN)
        sizes = [c.size for c in list_checkpoints(conn, log_id)]
    with serve_app(create_app(settings, engine=db)) as url:
        base = f"{url}/v1/tlog/{hashlib.sha256(ORIGIN.encode()).hexdigest()}"
        yield {"base": base, "engine": db, "log_id": log_id, "sizes": sizes, "signer": signer}
    db.dispose()


def _ours(log: dict[str, Any], indices: list[int], old: int) -> dict[str, Any]:
    size = log["sizes"][-1]
    with log["engine"].connect() as conn:
        source = StoredNodeSource(conn, log["log_id"])
        leaves = source.get_nodes(0, 0, size)
        return {
            "leaves": leaves,
            "inclusion": {
                str(i): [h.hex() for h in inclusion_proof(i, size, source)] for i in indices
            },
            "consistency": [h.hex() for h in consistency_proof(old, size, source)],
        }


def test_tlog_scales_derives_our_root_and_proofs(big_log: dict[str, Any]) -> None:
    size, old = big_log["sizes"][-1], big_log["sizes"][0]
    assert size > MIN_RECORDS and level_count(size, 2) >= 1 and size % 256  # level 2, partials
    indices = [0, 255, 256, 65_535, 65_536, size - 1]
    result = subprocess.run(
        [str(witness_python()), str(HERE / "tiles_reader_script.py"), big_log["base"], str(old)]
        + [str(i) for i in indices],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    theirs = json.loads(result.stdout)
    ours = _ours(big_log, indices, old)
    assert theirs["size"] == size
    assert theirs["root"] == theirs["checkpoint_root"]  # re-derived from tiles alone
    assert theirs["inclusion"] == ours["inclusion"]
    assert theirs["consistency"] == ours["consistency"]


def _aics(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(witness_python()), "-m", "aics_tlog", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_aics_tlog_verifies_checkpoint_inclusion_and_consistency(big_log: dict[str, Any]) -> None:
    """aics-tlog authenticates the tiles against the signed checkpoint (out-of-band log key)
    before computing any proof; it proves an entry's inclusion and the log's growth from the
    first checkpoint."""
    key = big_log["signer"].verifier_key
    common = ["--tiles", big_log["base"], "--log-key", key, "--origin", ORIGIN]
    _aics("verify-checkpoint", *common)
    size, old = big_log["sizes"][-1], big_log["sizes"][0]
    ours = _ours(big_log, [], old)
    for index in (3, 70_001, size - 1):
        _aics(
            "verify-inclusion",
            *common,
            "--index",
            str(index),
            "--leaf-hash",
            ours["leaves"][index].hex(),
        )
    with big_log["engine"].connect() as conn:
        first = list_checkpoints(conn, big_log["log_id"])[0]
    _aics(
        "verify-consistency",
        *common,
        "--old-size",
        str(old),
        "--old-root",
        base64.b64encode(first.root).decode(),
    )


def test_a_rewritten_node_is_caught_by_aics_tlog(big_log: dict[str, Any]) -> None:
    """The attacker edits one stored Merkle node (level 8, under the first checkpoint's tree):
    the level-1 hash tile it lands in no longer hashes to the signed root, and aics-tlog
    refuses the proof instead of trusting the tiles. (Runs last: it damages the shared log.)"""
    with big_log["engine"].connect() as conn:
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS nodes_append_only_update")
        conn.exec_driver_sql(
            "UPDATE nodes SET hash = zeroblob(32) WHERE level = 8 AND idx = 3 AND log_id = ?",
            (big_log["log_id"],),
        )
        conn.commit()
    key = big_log["signer"].verifier_key
    result = subprocess.run(
        [str(witness_python()), "-m", "aics_tlog", "verify-inclusion", "--tiles", big_log["base"],
         "--log-key", key, "--origin", ORIGIN, "--index", "1000", "--leaf-hash",
         _ours(big_log, [], 1)["leaves"][1000].hex()],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert json.loads(result.stdout)["ok"] is False
