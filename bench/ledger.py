"""Ledger benchmark: store append vs raw executemany, verify throughput, proof latency.

Run: ``python bench/ledger.py [--records N] [--proof-records N]`` (``auditlog bench ledger``).

1. Append: ``bench/ledger_store.py`` (the store's bulk path against a raw driver executemany of
   identical rows, same run).
2. Verify: ``auditlog.verifier.verify_database`` over a SQLite log of ``--records`` records
   written by the recorder, against a baseline in the same run that only reads the same rows with
   the raw sqlite3 driver and computes each leaf hash (the least work any verifier must do).
   Measured as CPU time of this process (one core).
3. Proofs: inclusion and consistency proofs read from the database for random indices of a log of
   ``--proof-records`` records (default 1,000,000), p50/p99 latency; budget < 50 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import runpy
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from auditlog.ledger import (
    MerkleFrontier,
    RecordKind,
    Signer,
    consistency_proof,
    inclusion_proof,
    payload_bytes,
    verify_consistency,
    verify_inclusion,
)
from auditlog.recorder import AuditRecorder, LogSequencer
from auditlog.store import StoredNodeSource, append_batch, create_db_engine, ensure_log, upgrade
from auditlog.verifier import verify_database

ORIGIN = "bench.auditlog.invalid/ledger"


def build_recorded_db(path: Path, n_records: int) -> tuple[str, Signer]:
    sys.path.insert(0, str(Path(__file__).parent))
    from recorder import make_events  # bench/recorder.py

    url = f"sqlite:///{path}"
    signer = Signer.generate(ORIGIN)
    with AuditRecorder.open(
        url, origin=ORIGIN, signers=[signer], spool_path=path.with_suffix(".spool")
    ) as recorder:
        for event in make_events(n_records):
            recorder.record(event)
    return url, signer


def bench_verify(tmp: Path, n_records: int, repeat: int) -> None:
    url, signer = build_recorded_db(tmp / "verify.db", n_records)
    db_file = url.removeprefix("sqlite:///")
    ours, base = [], []
    size = 0
    for _ in range(repeat):
        t = time.process_time()
        report = verify_database(url, keys=[signer.verifier_key])
        ours.append(time.process_time() - t)
        if not report.ok:
            raise SystemExit(f"verification failed: {report.findings[:3]}")
        size = report.records
        t = time.process_time()
        conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
        sha = hashlib.sha256
        rows = conn.execute(
            "SELECT r.seq, r.body, r.leaf, p.data FROM records r LEFT JOIN payloads p "
            "ON p.log_id = r.log_id AND p.seq = r.seq ORDER BY r.seq"
        )
        for _seq, body, _leaf, _data in rows:
            sha(b"\x00" + body).digest()
        conn.close()
        base.append(time.process_time() - t)
    o, b = statistics.median(ours), statistics.median(base)
    print(
        f"verify      {size / o:10,.0f} records/s per core   baseline (read + leaf hash only) "
        f"{size / b:10,.0f} records/s   ratio {b / o:.2f}   ({size:,} records, median of "
        f"{repeat})"
    )


def build_large_log(path: Path, n_records: int) -> str:
    """A log of ``n_records`` tokens records written through the store's bulk path."""
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = create_db_engine(url)
    with engine.begin() as conn:
        log_id = ensure_log(conn, ORIGIN)
    seq = LogSequencer(origin=ORIGIN, log_id=log_id, frontier=MerkleFrontier(), heads={})
    payload = payload_bytes({"token_ids": [1, 2, 3], "drafts": [1, 2, 3, 4]}, trusted=True)
    for chunk in range(0, n_records, 10_000):
        for i in range(chunk, min(chunk + 10_000, n_records)):
            seq.append(
                RecordKind.STEP,
                ts=1_700_000_000_000_000_000 + i,
                payload=payload,
                fields={"step": i, "batch": [], "n": 0, "passes": 1},
                trusted=True,
            )
        batch = seq.drain()
        with engine.begin() as conn:
            append_batch(conn, log_id, batch.records, batch.nodes)
    engine.dispose()
    return url


def bench_proofs(tmp: Path, n_records: int, samples: int) -> None:
    t = time.perf_counter()
    url = build_large_log(tmp / "proofs.db", n_records)
    build_s = time.perf_counter() - t
    engine = create_db_engine(url, read_only=True)
    rng = random.Random(5)
    incl, cons = [], []
    with engine.connect() as conn:
        source = StoredNodeSource(conn, 1)
        from auditlog.ledger import root_hash

        root = root_hash(n_records, source)
        for _ in range(samples):
            index = rng.randrange(n_records)
            t = time.perf_counter()
            proof = inclusion_proof(index, n_records, source)
            incl.append(time.perf_counter() - t)
            leaf = source.get_nodes(0, index, index + 1)[0]
            verify_inclusion(leaf, index, n_records, proof, root)
            old = rng.randrange(1, n_records)
            t = time.perf_counter()
            cproof = consistency_proof(old, n_records, source)
            cons.append(time.perf_counter() - t)
            verify_consistency(old, n_records, cproof, root_hash(old, source), root)

    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1e3

    print(
        f"proofs      log of {n_records:,} records (built in {build_s:.0f} s), {samples} random "
        f"indices: inclusion p50 {pct(incl, 0.5):.2f} ms p99 {pct(incl, 0.99):.2f} ms; "
        f"consistency p50 {pct(cons, 0.5):.2f} ms p99 {pct(cons, 0.99):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--proof-records", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-append", action="store_true")
    args = parser.parse_args()
    if not args.skip_append:
        sys.argv = [sys.argv[0], "--records", "100000"]
        try:
            runpy.run_path(str(Path(__file__).with_name("ledger_store.py")), run_name="__main__")
        except SystemExit as exc:  # its main() ends with sys.exit(status)
            if exc.code:
                raise
    with tempfile.TemporaryDirectory() as d:
        bench_verify(Path(d), args.records, args.repeat)
        bench_proofs(Path(d), args.proof_records, args.samples)


if __name__ == "__main__":
    main()
