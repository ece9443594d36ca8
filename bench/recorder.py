"""Recorder benchmark: ingest throughput against a raw driver executemany of the same rows.

Run: ``python bench/recorder.py [--records N] [--pg URL]`` (or ``auditlog bench recorder``).

The headline rows seal payloads (C16: AES-256-GCM, a data key per request), as ``auditlog demo``
and ``auditlog serve`` do by default. It also records the same traffic sealed and unsealed, in
interleaved runs of the same process, and prints both rates and their ratio.

For each database the same synthetic engine traffic (64 concurrent requests, speculative steps of
1-5 tokens per request) goes through the full recorder pipeline (queue, de-interleave, canonical
bytes, SHA-256, Merkle frontier, group commit, checkpoints). The baseline then inserts exactly the
rows the recorder wrote (records, payloads, nodes), 1,000 records per transaction, with the raw
driver (sqlite3 ``executemany`` / psycopg ``executemany``) into a fresh copy of the same schema, in
the same process. The figure that matters is the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from auditlog.crypto import open_keyring
from auditlog.events import Event
from auditlog.ledger import Signer
from auditlog.recorder import AuditRecorder
from auditlog.recorder.process import ProcessRecorder
from auditlog.store import create_db_engine, upgrade
from auditlog.store.db import normalize_url
from auditlog.synthetic import SyntheticEngine

ORIGIN = "bench.auditlog.invalid/recorder"
FLUSH_MS = float(os.environ.get("AUDITLOG_BENCH_FLUSH_MS", "10"))
# Process CPU time (all threads) of the last recorder run and raw insert: on a loaded machine the
# steadier measure (wall-clock throughput moves with other processes' load).
CPU_S: dict[str, float] = {}
TABLES = {
    "records": ("log_id", "seq", "kind", "request_id", "req_seq", "tenant", "ts", "leaf", "body"),
    "payloads": ("log_id", "seq", "data"),
    "nodes": ("log_id", "level", "idx", "hash"),
}


def make_events(n_records: int) -> list[Event]:
    engine = SyntheticEngine(seed=42, tenants=4, max_batch=64)
    events: list[Event] = []
    approx = 0
    while approx < n_records:
        while len(engine.remaining) < 64:
            events.append(engine.start(engine.rng.randint(100, 400)))
            approx += 1
        step = engine.step()
        if step is not None:
            events.append(step)
            approx += len(set(step.request_ids)) + 1
        for end in engine.finish_done():
            events.append(end)
            approx += 1
    for request_id in list(engine.remaining):
        engine.remaining[request_id] = 0
    events.extend(engine.finish_done())
    return events


def open_recorder(kind: str, db_url: str, **options: Any) -> AuditRecorder | ProcessRecorder:
    """The thread recorder (``AuditRecorder``) or the process recorder (``ProcessRecorder``)."""
    recorder_class = ProcessRecorder if kind == "process" else AuditRecorder
    return recorder_class.open(db_url, **options)


def run_recorder(
    db_url: str,
    events: list[Event],
    spool: Path,
    keyring: Path | None = None,
    kind: str = "thread",
) -> tuple[float, int]:
    upgrade(db_url)
    recorder = open_recorder(
        kind,
        db_url,
        origin=ORIGIN,
        signers=[Signer.generate(ORIGIN)],
        migrate=False,
        spool_path=spool,
        key_provider=None if keyring is None else open_keyring(keyring),
    )
    t, cpu = time.perf_counter(), time.process_time()
    for event in events:
        recorder.record(event)
    recorder.close()
    CPU_S["recorder"] = time.process_time() - cpu
    return time.perf_counter() - t, recorder.stats.records


def dump_rows(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_db_engine(db_url, read_only=True)
    rows = {}
    with engine.connect() as conn:
        for table, cols in TABLES.items():
            order = "seq" if "seq" in cols else "level, idx"
            result = conn.execute(text(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}"))
            rows[table] = [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in result
            ]
    engine.dispose()
    return rows


def raw_insert(db_url: str, rows: dict[str, list[tuple[Any, ...]]], per_txn: int = 1000) -> float:
    """Insert the same rows with the driver's executemany, ``per_txn`` records per transaction."""
    upgrade(db_url)
    engine = create_db_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO logs (id, origin, created) VALUES (1, :o, 0)"), {"o": ORIGIN}
        )
    records, payloads, nodes = rows["records"], rows["payloads"], rows["nodes"]
    pay_at = {r[1]: i for i, r in enumerate(payloads)}
    raw = engine.raw_connection()
    driver: Any = raw.driver_connection
    is_pg = engine.dialect.name == "postgresql"
    mark = "%s" if is_pg else "?"
    sql = {
        t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join([mark] * len(c))})"
        for t, c in TABLES.items()
    }
    t0, cpu = time.perf_counter(), time.process_time()
    node_i = 0
    for start in range(0, len(records), per_txn):
        chunk = records[start : start + per_txn]
        last = chunk[-1][1]
        pays = [payloads[pay_at[r[1]]] for r in chunk if r[1] in pay_at]
        chunk_nodes = []
        while node_i < len(nodes) and ((nodes[node_i][2] + 1) << nodes[node_i][1]) <= last + 1:
            chunk_nodes.append(nodes[node_i])
            node_i += 1
        cur = driver.cursor()
        if not is_pg:
            cur.execute("BEGIN")  # the store opens sqlite3 in autocommit mode
        cur.executemany(sql["records"], chunk)
        cur.executemany(sql["payloads"], pays)
        if chunk_nodes:
            cur.executemany(sql["nodes"], chunk_nodes)
        driver.commit()
    elapsed = time.perf_counter() - t0
    CPU_S["raw"] = time.process_time() - cpu
    raw.close()
    engine.dispose()
    return elapsed


def pg_database(server_url: str) -> tuple[str, Any]:
    name = f"auditlog_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        normalize_url(server_url), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return normalize_url(server_url).set(database=name).render_as_string(hide_password=False), drop


def bench_backend(label: str, urls: list[str], events: list[Event], tmp: Path, repeat: int) -> None:
    """The headline: payloads sealed (the default of ``auditlog demo`` and ``auditlog serve``);
    the baseline inserts the very (sealed) rows the recorder wrote."""
    rec_rates, raw_rates, cpu_ratios = [], [], []
    for i in range(repeat):
        rec_url, raw_url = urls[2 * i], urls[2 * i + 1]
        keyring = tmp / f"keyring-backend-{label}-{i}.json"
        elapsed, n = run_recorder(rec_url, events, tmp / f"spool-{label}-{i}", keyring)
        rows = dump_rows(rec_url)
        raw_elapsed = raw_insert(raw_url, rows)
        cpu_ratios.append(CPU_S["raw"] / CPU_S["recorder"])
        rec_rates.append(n / elapsed)
        raw_rates.append(len(rows["records"]) / raw_elapsed)
    tokens = sum(len(e.token_ids) for e in events if hasattr(e, "token_ids"))
    rec, raw = statistics.median(rec_rates), statistics.median(raw_rates)
    ratios = [r / b for r, b in zip(rec_rates, raw_rates, strict=True)]
    print(
        f"{label:10s} recorder (sealed) {rec:10,.0f} records/s ({tokens * rec / n:10,.0f} "
        f"tokens/s)   raw executemany {raw:10,.0f} records/s   ratio {rec / raw:.2f} "
        f"(runs {min(ratios):.2f}-{max(ratios):.2f})   ({n:,} records, median of {repeat})"
    )
    print(
        f"{label:10s} CPU time: raw insert / recorder {statistics.median(cpu_ratios):.2f} "
        f"(runs {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f}; client process only)"
    )


def bench_encryption(
    label: str, urls: list[str], events: list[Event], tmp: Path, repeat: int
) -> None:
    """The same traffic recorded with payloads sealed (C16) and unsealed, interleaved runs."""
    rates: dict[str, list[float]] = {"plain": [], "sealed": []}
    for i in range(repeat):
        for j, mode in enumerate(("plain", "sealed") if i % 2 == 0 else ("sealed", "plain")):
            keyring = tmp / f"keyring-{label}-{i}.json" if mode == "sealed" else None
            url = urls[2 * i + j]
            elapsed, n = run_recorder(url, events, tmp / f"spool-enc-{label}-{i}-{j}", keyring)
            rates[mode].append(n / elapsed)
    plain, sealed = statistics.median(rates["plain"]), statistics.median(rates["sealed"])
    print(
        f"{label:10s} unsealed {plain:10,.0f} records/s   sealed (AES-256-GCM) {sealed:10,.0f} "
        f"records/s   sealed/unsealed {sealed / plain:.3f}   (median of {repeat})"
    )


def bench_sequencing(events: list[Event], tmp: Path, repeat: int) -> None:
    """The writer's CPU per record without the database: de-interleave, seal, canonical bytes,
    SHA-256, Merkle frontier (best of ``repeat``; the gate's check in ``record()`` apart)."""
    from auditlog.crypto import PayloadSealer
    from auditlog.ledger import MerkleFrontier
    from auditlog.recorder import LogSequencer
    from auditlog.recorder.gate import EventGate
    from auditlog.recorder.translate import sequence_events

    for sealed in (True, False):
        best, best_gate = float("inf"), float("inf")
        for i in range(repeat):
            keys = PayloadSealer(open_keyring(tmp / f"keyring-seq-{i}.json")) if sealed else None
            seq = LogSequencer(
                origin=ORIGIN, log_id=1, frontier=MerkleFrontier(), heads={}, sealer=keys
            )
            gate = EventGate()
            t = time.process_time()
            for event in events:
                gate.admit(event)
            t_gate = time.process_time()
            for start in range(0, len(events), 64):
                sequence_events(seq, events[start : start + 64])
                seq.drain()
            done = time.process_time()
            best_gate = min(best_gate, (t_gate - t) / seq.size)
            best = min(best, (done - t_gate) / seq.size)
        print(
            f"sequencing {'sealed  ' if sealed else 'unsealed'} {best * 1e6:6.2f} us/record CPU, "
            f"gate {best_gate * 1e6:5.2f} us/record (best of {repeat})"
        )


def bench_kinds(label: str, urls: list[str], events: list[Event], tmp: Path, repeat: int) -> None:
    """Ingest through the public API (record every event, then close) with the thread and the
    process recorder, interleaved runs; the caller's CPU is this process's alone."""
    rates: dict[str, list[float]] = {"thread": [], "process": []}
    cpus: dict[str, list[float]] = {"thread": [], "process": []}
    for i in range(repeat):
        for j, kind in enumerate(KINDS if i % 2 == 0 else KINDS[::-1]):
            url = urls[2 * i + j]
            elapsed, n = run_recorder(url, events, tmp / f"spool-kind-{label}-{i}-{j}", kind=kind)
            rates[kind].append(n / elapsed)
            cpus[kind].append(CPU_S["recorder"] / n)
    for kind in KINDS:
        print(
            f"{label:10s} {kind:7s} recorder {statistics.median(rates[kind]):10,.0f} records/s   "
            f"caller-process CPU {statistics.median(cpus[kind]) * 1e6:6.2f} us/record "
            f"(median of {repeat}, load {os.getloadavg()[0]:.2f})"
        )


KINDS = ("thread", "process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "AUDITLOG_TEST_PG_URL", "postgresql+psycopg://root@/test?host=/var/run/postgresql"
        ),
    )
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument(
        "--engine",
        action="store_true",
        help="also measure the reference engine with the recorder off/on",
    )
    parser.add_argument("--engine-batch", type=int, nargs="+", default=[8, 32])
    parser.add_argument(
        "--sequencing", action="store_true", help="only the writer's CPU per record, no database"
    )
    parser.add_argument("--engine-tokens", type=int, default=64)
    parser.add_argument(
        "--kinds",
        action="store_true",
        help="only the thread against the process recorder: ingest, and with --engine the engine",
    )
    args = parser.parse_args()
    events = make_events(args.records)
    print(f"python {sys.version.split()[0]}, {len(events):,} events")
    if args.sequencing:
        with tempfile.TemporaryDirectory() as d:
            bench_sequencing(events, Path(d), max(args.repeat, 5))
        return
    if args.kinds:
        with tempfile.TemporaryDirectory() as d:
            compare_kinds(args, events, Path(d))
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        urls = [f"sqlite:///{tmp / f'db{i}.sqlite'}" for i in range(2 * args.repeat)]
        bench_backend("sqlite", urls, events, tmp, args.repeat)
        enc_urls = [f"sqlite:///{tmp / f'enc{i}.sqlite'}" for i in range(2 * args.repeat)]
        bench_encryption("sqlite", enc_urls, events, tmp, args.repeat)
        if not args.no_pg:
            made = [pg_database(args.pg) for _ in range(4 * args.repeat)]
            try:
                urls = [u for u, _ in made]
                bench_backend("postgresql", urls[: 2 * args.repeat], events, tmp, args.repeat)
                bench_encryption("postgresql", urls[2 * args.repeat :], events, tmp, args.repeat)
            finally:
                for _, drop in made:
                    drop()
        if args.engine:
            run_engine_overhead(args, tmp)


def compare_kinds(args: argparse.Namespace, events: list[Event], tmp: Path) -> None:
    """``--kinds``: the thread and the process recorder, ingest (and engine) only."""
    urls = [f"sqlite:///{tmp / f'kinds{i}.sqlite'}" for i in range(2 * args.repeat)]
    bench_kinds("sqlite", urls, events, tmp, args.repeat)
    if not args.no_pg:
        made = [pg_database(args.pg) for _ in range(2 * args.repeat)]
        try:
            bench_kinds("postgresql", [u for u, _ in made], events, tmp, args.repeat)
        finally:
            for _, drop in made:
                drop()
    if args.engine:
        run_engine_overhead(args, tmp)


def run_engine_overhead(args: argparse.Namespace, tmp: Path) -> None:
    """``--engine``: the reference engine's decode with the recorder off and on
    (bench/recorder_engine.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from recorder_engine import bench_engine_overhead  # bench/recorder_engine.py

    for batch in args.engine_batch:
        bench_engine_overhead(tmp, batch, args.engine_tokens, args.repeat)


if __name__ == "__main__":
    main()
