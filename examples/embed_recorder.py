"""Embed the recorder in an inference loop of your own, then verify the result.

Run: ``python examples/embed_recorder.py [WORKDIR]``. It needs no GPU and no model: the events
come from ``auditlog.synthetic``, shaped as any continuous-batching engine with speculative
decoding would emit them (one ``BatchStep`` per physical step, tokens of several requests
interleaved, each tagged with its request id and provenance).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from auditlog.ledger import DirectoryWitness, Signer
from auditlog.recorder import AuditRecorder
from auditlog.store import create_db_engine
from auditlog.synthetic import SyntheticEngine
from auditlog.trails import read_trail
from auditlog.verifier import verify_database

ORIGIN = "inference.example/engine-0"


def main(workdir: Path) -> int:
    db_url = f"sqlite:///{workdir / 'audit.db'}"
    signer = Signer.generate(ORIGIN)  # in production: Signer.from_key_string(key file)
    witness = DirectoryWitness(workdir / "witness")  # in production: storage its admin can't edit

    engine = SyntheticEngine(seed=7)
    with AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[signer],
        witnesses=[witness],
        spool_path=workdir / "audit.spool",
    ) as recorder:
        for event in engine.run(10):  # your engine loop: recorder.record(event) for each event
            recorder.record(event)
        # A fail-closed server would call recorder.wait_durable(request_id, n) per chunk.

    with create_db_engine(db_url, read_only=True).connect() as conn:
        request_id = next(iter(engine.truth))
        trail = read_trail(conn, ORIGIN, request_id)
        print(
            f"{request_id}: tenant {trail.tenant}, {len(trail.token_ids)} tokens, "
            f"provenance {[str(p) for p in trail.provenance[:5]]}..., end {trail.reason}"
        )

    report = verify_database(db_url, keys=[signer.verifier_key], witness_dir=witness.path)
    print("verification:", "intact" if report.ok else report.findings)
    return 0 if report.ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(main(Path(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(main(Path(tmp)))
