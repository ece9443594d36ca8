"""Fleet benchmark: N processes, each an engine writing its own log, into one PostgreSQL database.

Run: ``python bench/fleet.py [--writers 8] [--records 10000] [--source synthetic|engine]
[--partitions P] [--max-batch-events E] [--pace S] [--repeat 3] [--pg URL]`` (or ``auditlog bench
fleet ...``).

Each of the N processes prepares its engine's events before the clock starts: ``synthetic``
(the synthetic engine, 64 concurrent requests, speculative steps of 1-5 tokens) or ``engine`` (the
reference engine on the demo pair, one torch thread, speculative k=4; slower to prepare). Then all
start together and record their events through their own ``AuditRecorder`` into their own log of
one database (the full pipeline: de-interleave, canonical bytes, SHA-256, Merkle frontier, group
commit, signed checkpoints). The baseline: the same N processes insert exactly the rows their
recorder wrote (records, payloads, nodes, checkpoints) with raw psycopg ``executemany`` into a
fresh database with the same schema, in as many transactions as their recorder committed.

Figures: aggregate records/s (all records / wall time from the common start to the last finish)
and the p50/p99 commit latency (one transaction, from BEGIN to the return of COMMIT, over all
writers), for both, and the ratio. ``--partitions P`` migrates both databases with the ledger
tables partitioned by log (``auditlog db upgrade --partitions P``). The recorder and the raw runs
alternate in order from one repetition to the next.

By default every writer records as fast as it can (saturated: each commit carries up to the
recorder's ``max_batch_events``). ``--pace S`` feeds each recorder S engine steps per second, as a
serving engine would: its commits then follow the group-commit interval and the commit latency is
that of a fleet below saturation; the raw baseline still runs unpaced (its rate is the ceiling).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text

from auditlog.events import BatchStep, Event
from auditlog.ledger import Signer
from auditlog.recorder import AuditRecorder
from auditlog.store import create_db_engine, upgrade

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recorder import make_events, pg_database  # bench/recorder.py

TABLES = {
    "records": ("log_id", "seq", "kind", "request_id", "req_seq", "tenant", "ts", "leaf", "body"),
    "payloads": ("log_id", "seq", "data"),
    "nodes": ("log_id", "level", "idx", "hash"),
    "checkpoints": ("log_id", "size", "root", "note", "ts"),
}


def origin_of(i: int) -> str:
    return f"bench.auditlog.invalid/fleet-{i}"


def engine_events(n_records: int, worker: int) -> list[Event]:
    """Events of the reference engine (demo pair) for about ``n_records`` records."""
    import torch

    from auditlog.engine import LLMEngine, SamplingParams
    from auditlog.engine.corpus import prompts

    torch.set_num_threads(1)
    events: list[Event] = []
    engine = LLMEngine.demo(event_sink=events.append)
    params = SamplingParams(max_tokens=64, ignore_eos=True)
    batch = 0
    while len(events) < n_records:  # about one record per event
        for j, prompt in enumerate(prompts(num_prompts=16, seed=worker * 1000 + batch)):
            request_id = f"w{worker}-{batch}-{j}"
            engine.add_request(request_id, prompt, params, tenant=f"t{j % 4}", principal="bench")
        while engine.has_unfinished():
            engine.step()
        batch += 1
    return events


def timed_commits(engine: Engine) -> list[float]:
    """Commit latencies (BEGIN to the return of COMMIT) of ``engine``'s transactions, in s."""
    latencies: list[float] = []
    started: dict[int, float] = {}
    do_commit = engine.dialect.do_commit

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        started[id(conn.connection)] = time.perf_counter()  # the pooled connection

    def _commit(dbapi_connection: Any) -> None:
        do_commit(dbapi_connection)
        t0 = started.pop(id(dbapi_connection), None)
        if t0 is not None:
            latencies.append(time.perf_counter() - t0)

    engine.dialect.do_commit = _commit  # type: ignore[method-assign]
    return latencies


def record_worker(
    barrier: Any, url: str, i: int, source: str, n: int, spool: str, batch_events: int, pace: float
) -> dict:
    events = make_events(n) if source == "synthetic" else engine_events(n, i)
    engine = create_db_engine(url)
    latencies = timed_commits(engine)
    origin = origin_of(i)
    recorder = AuditRecorder(
        engine=engine,
        origin=origin,
        signers=[Signer.generate(origin)],
        spool_path=spool,
        max_batch_events=batch_events,
    ).start()
    barrier.wait()
    t0 = time.perf_counter()
    steps = 0
    for item in events:
        if pace and isinstance(item, BatchStep):  # an engine emitting ``pace`` steps per second
            steps += 1
            time.sleep(max(0.0, t0 + steps / pace - time.perf_counter()))
        recorder.record(item)
    recorder.close(timeout=None)  # a saturated 2-core machine drains slowly
    t1 = time.perf_counter()
    engine.dispose()
    return {"records": recorder.stats.records, "t0": t0, "t1": t1, "lat": latencies}


def dump_log(url: str, origin: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_db_engine(url, read_only=True)
    rows = {}
    with engine.connect() as conn:
        log_id = conn.execute(text("SELECT id FROM logs WHERE origin = :o"), {"o": origin}).scalar()
        for table, cols in TABLES.items():
            result = conn.execute(
                text(f"SELECT {', '.join(cols)} FROM {table} WHERE log_id = :l ORDER BY 2, 3"),
                {"l": log_id},
            )
            rows[table] = [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in result
            ]
    engine.dispose()
    return rows


def last_leaf(table: str, row: tuple[Any, ...]) -> int:
    """The seq of the last record a row depends on: its transaction is that record's."""
    if table in ("records", "payloads"):
        return int(row[1])
    if table == "nodes":
        return ((row[2] + 1) << row[1]) - 1
    return int(row[1]) - 1  # checkpoints: size


def raw_worker(barrier: Any, url: str, i: int, rows: dict, num_txns: int) -> dict:
    engine = create_db_engine(url)
    latencies = timed_commits(engine)
    with engine.begin() as conn:
        log_id = conn.execute(
            text("INSERT INTO logs (origin, created) VALUES (:o, 0) RETURNING id"),
            {"o": origin_of(i)},
        ).scalar_one()
    del latencies[:]
    size = len(rows["records"])
    per_txn = max(1, -(-size // max(num_txns, 1)))
    chunks: list[dict[str, list[tuple[Any, ...]]]] = [
        {t: [] for t in TABLES} for _ in range(-(-size // per_txn))
    ]
    for table, table_rows in rows.items():
        for row in table_rows:
            chunks[min(last_leaf(table, row) // per_txn, len(chunks) - 1)][table].append(
                (log_id, *row[1:])
            )
    sql = {
        t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join(['%s'] * len(c))})"
        for t, c in TABLES.items()
    }
    barrier.wait()
    t0 = time.perf_counter()
    with engine.connect() as conn:
        for chunk in chunks:
            with conn.begin():
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                for table, table_rows in chunk.items():
                    if table_rows:
                        cursor.executemany(sql[table], table_rows)
    t1 = time.perf_counter()
    engine.dispose()
    return {"records": size, "t0": t0, "t1": t1, "lat": latencies}


def run_fleet(target: Any, args_of: list[tuple[Any, ...]]) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Manager().Barrier(len(args_of))
    with ctx.Pool(len(args_of)) as pool:
        results = pool.starmap(target, [(barrier, *a) for a in args_of])
    lat = sorted(x for r in results for x in r["lat"])
    wall = max(r["t1"] for r in results) - min(r["t0"] for r in results)
    return {
        "rate": sum(r["records"] for r in results) / wall,
        "p50": lat[len(lat) // 2] * 1e3,
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
        "commits": len(lat),
        "records": sum(r["records"] for r in results),
    }


def fresh_database(args: argparse.Namespace) -> tuple[str, Any]:
    url, drop = pg_database(args.pg)
    upgrade(url, partitions=args.partitions)
    return url, drop


def one_round(
    args: argparse.Namespace, tmp: Path, round_no: int, rows: list[Any]
) -> dict[str, dict[str, float]]:
    """One recorder fleet and one raw fleet, each into a fresh database. Even rounds run the
    recorder first and keep its rows in ``rows``; odd rounds insert the previous round's rows
    first, then record."""
    out: dict[str, dict[str, float]] = {}
    (rec_url, drop_rec), (raw_url, drop_raw) = fresh_database(args), fresh_database(args)
    spools = [str(tmp / f"spool-{round_no}-{i}") for i in range(args.writers)]
    rec_args = [
        (rec_url, i, args.source, args.records, spools[i], args.max_batch_events, args.pace)
        for i in range(args.writers)
    ]

    def raw() -> None:
        txns = max(1, out.get("recorder", {}).get("commits", 0) // args.writers or rows[-1])
        out["raw"] = run_fleet(
            raw_worker, [(raw_url, i, rows[i], txns) for i in range(args.writers)]
        )

    try:
        if round_no % 2 == 0 or not rows:
            out["recorder"] = run_fleet(record_worker, rec_args)
            rows[:] = [dump_log(rec_url, origin_of(i)) for i in range(args.writers)]
            rows.append(int(out["recorder"]["commits"] // args.writers))
            raw()
        else:
            raw()
            out["recorder"] = run_fleet(record_worker, rec_args)
        return out
    finally:
        drop_rec()
        drop_raw()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--records", type=int, default=10_000, help="records per writer")
    parser.add_argument("--source", choices=("synthetic", "engine"), default="synthetic")
    parser.add_argument("--partitions", type=int, default=None)
    parser.add_argument(
        "--max-batch-events",
        type=int,
        default=1024,
        help="the recorder's group-commit cap (its default: 1024 events)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="engine steps per second per writer (default: as fast as possible, saturated)",
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "AUDITLOG_TEST_PG_URL", "postgresql+psycopg://root@/test?host=/var/run/postgresql"
        ),
    )
    args = parser.parse_args()
    rounds: list[dict[str, dict[str, float]]] = []
    rows: list[Any] = []  # each writer's rows, then the recorder's commits per writer
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            rounds.append(one_round(args, Path(tmp), r, rows))
    print(
        f"fleet: {args.writers} writers, {args.source} events, ~{args.records:,} records each, "
        f"partitions {args.partitions or 'none'}, max {args.max_batch_events} events per commit, "
        f"{f'{args.pace:g} steps/s per writer' if args.pace else 'saturated'}, "
        f"{os.cpu_count()} CPUs, median of {args.repeat}"
    )
    for kind in ("recorder", "raw"):
        med = {k: statistics.median(r[kind][k] for r in rounds) for k in ("rate", "p50", "p99")}
        rng = [r[kind]["rate"] for r in rounds]
        print(
            f"  {kind:8s} {med['rate']:9,.0f} records/s (range {min(rng):,.0f}-{max(rng):,.0f})  "
            f"commit p50 {med['p50']:6.1f} ms  p99 {med['p99']:6.1f} ms  "
            f"({rounds[0][kind]['commits']:,} commits of "
            f"~{rounds[0][kind]['records'] / rounds[0][kind]['commits']:,.0f} records)"
        )
    if args.pace:  # the recorder ran at the offered load: no ratio to the unpaced ceiling
        return
    ratio = [r["recorder"]["rate"] / r["raw"]["rate"] for r in rounds]
    print(
        f"  recorder/raw {statistics.median(ratio):.2f} (range {min(ratio):.2f}-{max(ratio):.2f})"
    )


if __name__ == "__main__":
    main()
