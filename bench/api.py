"""Auditor API benchmark on a SQLite store of N records (default 1,000,000).

Run ``python bench/api.py [--records N]``. The store is filled through the public recording
path (``AuditRecorder`` fed synthetic interleaved, speculative, multi-tenant traffic); one request
generates 4,000 tokens. Figures (through the ASGI app, so each read includes authentication and
its committed, checkpointed access record):

1. search latency p50/p99: one tenant, a time range holding about 10 % of the traffic, page 50;
2. trail fetch (transcript, raw records, verdict with every inclusion proof) of the 4,000-token
   request;
3. evidence bundle export of the same request;
4. the access-record write alone (commit of one ``access`` record plus its signed checkpoint),
   which is the added cost per read.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from auditlog.api import ApiSettings, Role, create_app
from auditlog.api.keys import ApiKey, create_key
from auditlog.events import Event
from auditlog.ledger import Signer
from auditlog.recorder import AuditRecorder
from auditlog.store.db import create_db_engine, upgrade
from auditlog.synthetic import SyntheticEngine

ORIGIN = "bench.example/engine"
API_ORIGIN = "bench.example/api-access"
LONG_TOKENS = 4_000


def _signer(name: str) -> Signer:
    return Signer(name=name, seed=hashlib.sha256(name.encode()).digest())


def fill(db_url: str, num_records: int, spool: Path) -> tuple[str, tuple[int, int], float]:
    """Record traffic until ``num_records`` records; returns (long request id, ts range, s)."""
    synthetic = SyntheticEngine(seed=3, tenants=8, max_batch=16)
    t0 = time.perf_counter()
    approx = 0
    with AuditRecorder.open(
        db_url, origin=ORIGIN, signers=[_signer(ORIGIN)], spool_path=spool
    ) as recorder:
        events: list[Event] = [synthetic.start(n_tokens=LONG_TOKENS)]
        long_id = events[0].request_id  # type: ignore[union-attr]
        first_ts = last_ts = events[0].ts
        while approx < num_records or synthetic.remaining:
            if approx < num_records:
                # One arrival per step keeps the running set (max 16) from building a backlog.
                started = synthetic.start()
                events.append(started)
                last_ts = started.ts
                approx += 1
            step = synthetic.step()
            if step is not None:
                events.append(step)
                approx += len(set(step.request_ids) | set(step.drafts)) + 1
            finished = synthetic.finish_done()
            events.extend(finished)
            approx += len(finished)
            for event in events:
                recorder.record(event)
            events.clear()
    return long_id, (first_ts, last_ts), time.perf_counter() - t0


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds of ``repeat`` calls."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=None, help="keep the database here")
    args = parser.parse_args()
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="auditlog-bench-api-"))
    db_path = workdir / "bench.db"
    db_path.unlink(missing_ok=True)
    db_url = f"sqlite:///{db_path}"
    upgrade(db_url)
    long_id, (t_first, t_last), fill_s = fill(db_url, args.records, workdir / "spool.jsonl")

    key_file = workdir / "api.key"
    key_file.write_text(_signer(API_ORIGIN).key_string)
    settings = ApiSettings(
        db_url=db_url,
        api_origin=API_ORIGIN,
        api_signing_key=key_file,
        api_trusted_keys=[_signer(ORIGIN).verifier_key],
    )
    engine = create_db_engine(db_url)
    with engine.begin() as conn:
        total = conn.exec_driver_sql("SELECT count(*) FROM records").scalar_one()
        tenant = conn.exec_driver_sql(
            "SELECT tenant FROM records WHERE request_id = ? AND req_seq = 0", (long_id,)
        ).scalar_one()
        admin = create_key(conn, role=Role.ADMIN).token
    app = create_app(settings, engine=engine)
    client = TestClient(app)
    headers = {"Authorization": f"Bearer {admin}"}
    print(
        f"store: {total:,} records in SQLite, filled in {fill_s:.1f} s "
        f"({total / fill_s:,.0f} records/s through AuditRecorder)"
    )

    span = t_last - t_first
    window = span // 10

    def search(i: int = 0) -> None:
        since = t_first + (i * 7919 % 9) * window
        params = {"tenant": tenant, "since": since, "until": since + window, "limit": 50}
        response = client.get("/v1/requests", headers=headers, params=params)
        if response.status_code != 200 or not response.json()["items"]:
            raise SystemExit(f"search failed: {response.status_code} {response.text[:200]}")

    counter = iter(range(10**9))
    search_ms = timed(lambda: search(next(counter)), args.searches)

    def fetch(path: str) -> Callable[[], object]:
        def call() -> object:
            response = client.get(path, headers=headers)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.text[:200]}")
            return response

        return call

    trail = fetch(f"/v1/requests/{long_id}")().json()  # type: ignore[attr-defined]
    if trail["verification"]["status"] != "anchored" or len(trail["tokens"]) != LONG_TOKENS:
        raise SystemExit(f"long trail did not verify: {trail['verification']}")
    trail_ms = timed(fetch(f"/v1/requests/{long_id}"), 5)
    bundle = fetch(f"/v1/requests/{long_id}/bundle")().content  # type: ignore[attr-defined]
    bundle_ms = timed(fetch(f"/v1/requests/{long_id}/bundle"), 5)
    access = app.state.auditlog.access_log
    probe = ApiKey(id="0" * 16, role=Role.ADMIN, tenants=(), label="", created=0, revoked=None)
    access_ms = timed(
        lambda: access.record(
            key=probe,
            endpoint="GET /bench",
            request_ids=[long_id],
            reason=None,
            status=200,
            params={},
        ),
        300,
    )
    print(
        f"search ({tenant}, 10% time window, page 50): p50 {pct(search_ms, 0.5):.2f} ms, "
        f"p99 {pct(search_ms, 0.99):.2f} ms over {len(search_ms)} calls"
    )
    print(
        f"trail of a {LONG_TOKENS}-token request ({len(trail['records'])} records, verified): "
        f"p50 {statistics.median(trail_ms):.0f} ms"
    )
    print(f"bundle export of it ({len(bundle):,} bytes): p50 {statistics.median(bundle_ms):.0f} ms")
    print(
        f"access record per read (commit + signed checkpoint): p50 {pct(access_ms, 0.5):.2f} ms, "
        f"p99 {pct(access_ms, 0.99):.2f} ms"
    )
    client.close()
    engine.dispose()


if __name__ == "__main__":
    main()
