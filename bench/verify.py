"""Verifier benchmark: one core, ``--jobs``, and an incremental run over the last records.

Run: ``python bench/verify.py [--records N] [--tail M] [--jobs J] [--repeat R]``
(``auditlog bench verify``). Builds a SQLite log of N records through the sequencer and the
store's bulk path (requests of 50 steps, 8 at a time, a draft-verified tokens record per request
and step, a step manifest per step, a signed checkpoint every 100,000 records), then measures,
in the same run:

1. baseline: read the rows (records joined with payloads, the verifier's query) with the raw
   sqlite3 driver and compute each leaf hash, nothing else (CPU time of this process);
2. ``verify_database`` with one job (CPU time of this process: records/s per core, and the
   ratio to the baseline);
3. ``verify_database`` with ``--jobs`` J and with one job, wall clock (the speedup);
4. incremental: the first N - M records verified with a state file (``--state``), then M more
   appended and verified from the state (wall clock and CPU time).

``--records 10000000 --skip-compare`` builds the 10M-record log (about 20 µs per record on a
quiet core) and times the full run with ``--jobs`` and the incremental run only.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from auditlog.ledger import Checkpoint, RecordKind, Signer, payload_bytes, sign_checkpoint
from auditlog.recorder import LogSequencer
from auditlog.store import append_batch, create_db_engine, ensure_log, upgrade
from auditlog.store.checkpoints import StoredCheckpoint, insert_checkpoint
from auditlog.store.keys import list_keys, register_key
from auditlog.verifier import verify_database

ORIGIN = "bench.auditlog.invalid/verify"
STEPS_PER_REQUEST = 50
BATCH = 8
CHECKPOINT_EVERY = 100_000
TARGET = {"name": "t", "weights_sha256": "a" * 64, "tokenizer_sha256": "b" * 64,
          "architecture": "llama"}  # fmt: skip
DRAFTS = [11, 12, 13, 14]
TOKENS = payload_bytes({"token_ids": [11, 12, 13, 99], "drafts": DRAFTS}, trusted=True)
PROV = ["draft_accepted"] * 3 + ["target_recovered"]


class Builder:
    """Appends a realistic traffic mix to the log, resuming where the database stops."""

    def __init__(self, url: str, signer: Signer) -> None:
        self.url, self.signer = url, signer
        self.next_id = self.step = 0
        self.active: dict[str, int] = {}  # request id -> steps done

    def build(self, n_records: int) -> int:
        engine = create_db_engine(self.url)
        try:
            with engine.begin() as conn:
                log_id = ensure_log(conn, ORIGIN)
                if not list_keys(conn, log_id):
                    register_key(conn, log_id, self.signer.verifier_key, created=time.time_ns())
                seq = LogSequencer.resume(conn, ORIGIN)
            target = seq.size + n_records
            while seq.size < target:
                while len(seq.pending.records) < 10_000 and seq.size < target:
                    self._step(seq)
                with engine.begin() as conn:
                    batch = seq.drain()
                    append_batch(conn, seq.log_id, batch.records, batch.nodes)
                    if (
                        seq.size // CHECKPOINT_EVERY
                        != (seq.size - len(batch.records)) // (CHECKPOINT_EVERY)
                        or seq.size >= target
                    ):
                        self._checkpoint(conn, seq)
            return seq.size
        finally:
            engine.dispose()

    def _checkpoint(self, conn: Any, seq: LogSequencer) -> None:
        root = seq.frontier.root()
        note = sign_checkpoint(Checkpoint(ORIGIN, seq.size, root), [self.signer])
        insert_checkpoint(conn, seq.log_id, StoredCheckpoint(seq.size, root, note, time.time_ns()))

    def _step(self, seq: LogSequencer) -> None:
        ts = 1_700_000_000_000_000_000 + seq.size
        while len(self.active) < BATCH:
            rid = f"r{self.next_id:08d}"
            self.next_id += 1
            seq.append(
                RecordKind.REQUEST_START, ts=ts, request_id=rid, tenant="tenant-0",
                payload=payload_bytes({"prompt_token_ids": [1, 2, 3], "prompt_text": "p"}),
                fields={"principal": "bench", "client": "c", "engine": "bench/1", "params": {},
                        "target": TARGET, "draft": TARGET},
            )  # fmt: skip
            self.active[rid] = 0
        self.step += 1
        for rid in self.active:
            seq.append(RecordKind.TOKENS, ts=ts, request_id=rid, tenant="tenant-0",
                       payload=TOKENS, fields={"step": self.step, "n": 4, "prov": PROV},
                       trusted=True)  # fmt: skip
        batch = [[rid, 4] for rid in self.active]
        fields = {"step": self.step, "batch": batch, "n": 4 * len(batch), "passes": 1}
        seq.append(RecordKind.STEP, ts=ts, trusted=True, fields=fields)
        for rid in list(self.active):
            self.active[rid] += 1
            if self.active[rid] == STEPS_PER_REQUEST:
                del self.active[rid]
                n = 4 * STEPS_PER_REQUEST
                end = {"reason": "length", "n_generated": n, "n_delivered": n}
                seq.append(RecordKind.REQUEST_END, ts=ts, request_id=rid, tenant="tenant-0",
                           fields=end)  # fmt: skip


def baseline(db_file: Path) -> tuple[int, float]:
    """Read every row the verifier reads and hash each leaf: (rows, CPU seconds)."""
    t = time.process_time()
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    sha, n = hashlib.sha256, 0
    for _seq, body, _leaf, _data in conn.execute(
        "SELECT r.seq, r.body, r.leaf, p.data FROM records r LEFT JOIN payloads p "
        "ON p.log_id = r.log_id AND p.seq = r.seq ORDER BY r.seq"
    ):
        sha(b"\x00" + body).digest()
        n += 1
    conn.close()
    return n, time.process_time() - t


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(url: str, key: str, **kwargs: Any) -> tuple[Any, float, float]:
    """(report, wall seconds, CPU seconds of this process and of the worker processes)."""
    w, c, k = time.perf_counter(), time.process_time(), _children_cpu()
    report = verify_database(url, keys=[key], **kwargs)
    wall = time.perf_counter() - w
    cpu = time.process_time() - c + _children_cpu() - k
    if not report.ok:
        errors = [f for f in report.findings if str(f.severity) == "error"]
        raise SystemExit(f"verification failed: {errors[:3]}")
    return report, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--tail", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="keep the database here")
    parser.add_argument(
        "--skip-compare",
        action="store_true",
        help="only the full run with --jobs and the incremental run (for the 10M-record log)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        run(args, args.dir or Path(d))


def run(args: argparse.Namespace, where: Path) -> None:
    db_file = where / "verify.db"
    url, signer = f"sqlite:///{db_file}", Signer.generate(ORIGIN)
    state_key = Signer.generate("verify-state")
    upgrade(url)
    (where / "verify.vkey").write_text(signer.verifier_key + "\n")  # for `auditlog verify --key`
    builder = Builder(url, signer)
    t = time.perf_counter()
    builder.build(args.records - args.tail)
    print(f"build       {args.records - args.tail:,} records in {time.perf_counter() - t:.0f} s")
    state = where / "verify.state"
    key = signer.verifier_key
    report, wall, cpu = timed(url, key, jobs=args.jobs, state_path=state, state_key=state_key)
    print(f"state       full run of {report.records:,} records with --jobs {args.jobs}: "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU (all processes)")  # fmt: skip
    builder.build(args.tail)
    size = report.records + args.tail
    if args.skip_compare:
        report, wall, cpu = timed(url, key, jobs=args.jobs, state_path=state, state_key=state_key)
        print(f"incremental {args.tail:,} new records of {size:,} from the state: {wall:.2f} s "
              f"wall, {cpu:.2f} s CPU; verdict {report.verdict}")  # fmt: skip
        return
    base, one, one_wall, many_wall, many_cpu = [], [], [], [], []
    for _ in range(args.repeat):
        n, b = baseline(db_file)
        base.append(b)
        _, wall, cpu = timed(url, key, jobs=1)
        one.append(cpu)
        one_wall.append(wall)
        _, wall, cpu = timed(url, key, jobs=args.jobs)
        many_wall.append(wall)
        many_cpu.append(cpu)
    b, o = statistics.median(base), statistics.median(one)
    print(f"verify      {size / o:10,.0f} records/s per core (CPU)   baseline (read + leaf hash) "
          f"{n / b:10,.0f} records/s   ratio {b / o:.2f}   ({size:,} records, median of "
          f"{args.repeat}; runs {', '.join(f'{size / x:,.0f}' for x in one)})")  # fmt: skip
    ow, mw = statistics.median(one_wall), statistics.median(many_wall)
    pairs = ", ".join(f"{a / c:.2f}" for a, c in zip(one_wall, many_wall, strict=True))
    print(f"jobs        --jobs 1 {ow:.1f} s, --jobs {args.jobs} {mw:.1f} s wall: speedup "
          f"{ow / mw:.2f} (pairs: {pairs}); CPU of all processes {o:.1f} s and "
          f"{statistics.median(many_cpu):.1f} s")  # fmt: skip
    report, wall, cpu = timed(url, key, jobs=args.jobs, state_path=state, state_key=state_key)
    print(f"incremental {args.tail:,} new records of {size:,} from the state: {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU (full run {ow:.1f} s wall); verdict {report.verdict}, resumed from "
          f"{report.logs[0].resumed_from:,}")  # fmt: skip


if __name__ == "__main__":
    main()
