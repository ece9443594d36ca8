"""Store benchmark: ``append_batch`` against a raw driver ``executemany`` of identical rows.

Run: ``python bench/ledger_store.py [--records N] [--batch N] [--pg URL | --no-pg]``.

The records (``tokens`` records of about 300 header bytes, each with a small payload) and their
Merkle nodes are built before the clock starts. Each contender writes the same rows (records,
payloads, nodes) into a fresh database migrated to head, ``--batch`` records per transaction:

- ``append_batch``: ``with engine.begin() as conn: append_batch(conn, log_id, batch, nodes)``;
- SQLite baseline: plain ``sqlite3`` with the same pragmas (WAL, ``synchronous=FULL``), one
  ``executemany`` per table per transaction;
- PostgreSQL baseline: plain psycopg 3, ``cursor.executemany`` (pipelined) per table per
  transaction; ``append_batch`` uses ``COPY``.

Each contender runs ``--repeat`` times in alternation; the best run counts. docs/DESIGN.md section 6
budgets: at least 0.5x the raw SQLite baseline, 100k records/s on SQLite, 50k on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from auditlog.ledger.merkle_tree import MerkleFrontier
from auditlog.ledger.records import Record, RecordKind, build_record, payload_bytes
from auditlog.store import append_batch, create_db_engine, ensure_log, upgrade
from auditlog.store.db import normalize_url

ORIGIN = "bench.auditlog.invalid/ledger-store"
TS0 = 1_700_000_000_000_000_000
DEFAULT_PG_URL = "postgresql+psycopg://root@/test?host=/var/run/postgresql"
COLUMNS = {
    "records": ("log_id", "seq", "kind", "request_id", "req_seq", "tenant", "ts", "leaf", "body"),
    "payloads": ("log_id", "seq", "data"),
    "nodes": ("log_id", "level", "idx", "hash"),
}

TOKENS_FIELDS: dict[str, Any] = {"tenant": "tenant-0001", "n": 3, "prov": ["target"] * 3}
START_FIELDS: dict[str, Any] = {
    "tenant": "tenant-0001",
    "principal": "user-42",
    "client": "key-7",
    "engine": "auditlog-ref",
    "params": {"seed": 1, "max_tokens": 256},
    "target": {
        "name": "demo",
        "weights_sha256": "ab" * 32,
        "tokenizer_sha256": "cd" * 32,
        "architecture": "llama",
    },
}

Flush = tuple[list[Record], list[tuple[int, int, bytes]]]


def build_flushes(num_records: int, batch: int) -> list[Flush]:
    """``tokens`` records of 64 interleaved requests, cut into flushes with their new nodes."""
    frontier = MerkleFrontier()
    heads: dict[str, tuple[int, str]] = {}
    flushes: list[Flush] = []
    for first in range(0, num_records, batch):
        records: list[Record] = []
        nodes: list[tuple[int, int, bytes]] = []
        for seq in range(first, min(first + batch, num_records)):
            request_id = f"req-{seq % 64:04d}-5f0c6a1e"
            req_seq, prev = heads.get(request_id, (-1, "0" * 64))
            kind, fields = RecordKind.TOKENS, TOKENS_FIELDS | {"step": seq // 64}
            if req_seq < 0:  # every chain opens with request.start
                kind, fields = RecordKind.REQUEST_START, START_FIELDS
            record = build_record(
                log=ORIGIN,
                seq=seq,
                kind=kind,
                request_id=request_id,
                req_seq=req_seq + 1,
                ts=TS0 + seq * 1000,
                prev=prev,
                payload=payload_bytes({"token_ids": [seq % 32000, 17, 2048], "drafts": [5, 6]}),
                fields=fields,
            )
            heads[request_id] = (req_seq + 1, record.leaf.hex())
            records.append(record)
            nodes.extend(frontier.append(record.leaf))
        flushes.append((records, nodes))
    return flushes


def raw_rows(log_id: int, flush: Flush) -> dict[str, list[tuple[Any, ...]]]:
    records, nodes = flush
    return {
        "records": [
            (log_id, r.seq, r.kind.value, r.request_id, r.req_seq, r.tenant, r.ts, r.leaf, r.body)
            for r in records
        ],
        "payloads": [(log_id, r.seq, r.payload) for r in records if r.payload is not None],
        "nodes": [(log_id, level, idx, h) for level, idx, h in nodes],
    }


def run_append_batch(url: str, flushes: Sequence[Flush]) -> float:
    engine = create_db_engine(url)
    try:
        with engine.begin() as conn:
            log_id = ensure_log(conn, ORIGIN)
        started = time.perf_counter()
        for records, nodes in flushes:
            with engine.begin() as conn:
                append_batch(conn, log_id, records, nodes)
        return time.perf_counter() - started
    finally:
        engine.dispose()


def _log_id(url: str) -> int:
    engine = create_db_engine(url)
    try:
        with engine.begin() as conn:
            return ensure_log(conn, ORIGIN)
    finally:
        engine.dispose()


def run_raw_sqlite(url: str, flushes: Sequence[Flush]) -> float:
    log_id = _log_id(url)
    all_rows = [raw_rows(log_id, flush) for flush in flushes]  # shaped before the clock starts
    db = sqlite3.connect(make_url(url).database or "", isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        started = time.perf_counter()
        for rows in all_rows:
            db.execute("BEGIN")
            for table, table_rows in rows.items():
                marks = ", ".join("?" * len(COLUMNS[table]))
                sql = f"INSERT INTO {table} ({', '.join(COLUMNS[table])}) VALUES ({marks})"
                db.executemany(sql, table_rows)
            db.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        db.close()


def run_raw_postgres(url: str, flushes: Sequence[Flush]) -> float:
    import psycopg

    log_id = _log_id(url)
    all_rows = [raw_rows(log_id, flush) for flush in flushes]
    conninfo = normalize_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo) as db:
        started = time.perf_counter()
        for rows in all_rows:
            with db.transaction(), db.cursor() as cursor:
                for table, table_rows in rows.items():
                    marks = ", ".join(["%s"] * len(COLUMNS[table]))
                    sql = f"INSERT INTO {table} ({', '.join(COLUMNS[table])}) VALUES ({marks})"
                    if table_rows:
                        cursor.executemany(sql, table_rows)
        return time.perf_counter() - started


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="auditlog-bench-") as directory:
        url = f"sqlite:///{Path(directory) / 'bench.db'}"
        upgrade(url)
        yield url


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    name = f"auditlog_bench_{uuid.uuid4().hex}"
    server = normalize_url(server_url)
    admin = create_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = server.set(database=name).render_as_string(hide_password=False)
            upgrade(url)
            yield url
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def compare(
    label: str,
    new_database: Callable[[], Any],
    contenders: dict[str, Callable[[str, Sequence[Flush]], float]],
    flushes: Sequence[Flush],
    repeat: int,
) -> dict[str, float]:
    num_records = sum(len(records) for records, _ in flushes)
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(repeat):
        for name, run in contenders.items():
            with new_database() as url:
                best[name] = min(best[name], run(url, flushes))
    rates = {name: num_records / seconds for name, seconds in best.items()}
    for name, rate in rates.items():
        print(f"{label:10} {name:14} {rate:>10,.0f} records/s")
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--pg", default=os.environ.get("AUDITLOG_TEST_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args(argv)

    flushes = build_flushes(args.records, args.batch)
    body_bytes = sum(len(r.body) for records, _ in flushes for r in records) / args.records
    print(f"{args.records:,} records, mean header {body_bytes:.0f} bytes, {args.batch} per commit")
    sqlite_rates = compare(
        "sqlite",
        sqlite_database,
        {"append_batch": run_append_batch, "raw sqlite3": run_raw_sqlite},
        flushes,
        args.repeat,
    )
    ratio = sqlite_rates["append_batch"] / sqlite_rates["raw sqlite3"]
    print(f"sqlite     ratio append_batch / raw: {ratio:.2f}")
    if not args.no_pg:
        pg_rates = compare(
            "postgres",
            lambda: postgres_database(args.pg),
            {"append_batch": run_append_batch, "raw psycopg": run_raw_postgres},
            flushes,
            args.repeat,
        )
        ratio = pg_rates["append_batch"] / pg_rates["raw psycopg"]
        print(f"postgres   ratio append_batch / raw: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
