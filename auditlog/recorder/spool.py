"""The outage spool: an append-only local file of sequenced batches, replayed in order.

When the database cannot be reached the committer thread appends each flush here, one line per
batch, and fsyncs before it acknowledges anything (DESIGN.md section 5). Replay
(:meth:`Spool.replay`) writes the batches to the database in order, skipping every record whose
index the database already holds (after checking its leaf is the same), so nothing is lost and
nothing is written twice. A torn last line (a crash during the write) was never acknowledged and
is discarded.

Line format: canonical JSON ``{"nodes": [[level, index, hash_hex], ...], "records": [[seq, kind,
request_id, req_seq, ts, tenant, body_b64, payload_b64 | null], ...]}`` + ``\\n``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
from sqlalchemy import Connection, func, select

from auditlog.errors import RecorderError, VerificationError
from auditlog.ledger import Record, RecordKind, leaf_hash
from auditlog.store import StoredNodeSource, append_batch
from auditlog.store.schema import records as records_table

from .sequencer import PendingBatch

__all__ = ["Spool"]


class Spool:
    """Append-only spool file of one log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def append(self, batch: PendingBatch) -> None:
        """Append one batch and fsync it. Returns only once the bytes are on disk."""
        line = orjson.dumps(
            {
                "nodes": [[level, index, h.hex()] for level, index, h in batch.nodes],
                "records": [
                    [
                        r.seq,
                        str(r.kind),
                        r.request_id,
                        r.req_seq,
                        r.ts,
                        r.tenant,
                        base64.b64encode(r.body).decode(),
                        None if r.payload is None else base64.b64encode(r.payload).decode(),
                    ]
                    for r in batch.records
                ],
            }
        )
        new = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            _fsync_dir(self.path.parent)

    def batches(self) -> Iterator[PendingBatch]:
        """Read the spooled batches in order (a torn final line is skipped)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            lines = fh.read().split(b"\n")
        # The last element is b"" after a complete final line, or a torn line never acknowledged.
        for number, line in enumerate(lines[:-1], start=1):
            try:
                raw = orjson.loads(line)
                yield PendingBatch(
                    records=[_record(row) for row in raw["records"]],
                    nodes=[(lvl, idx, bytes.fromhex(h)) for lvl, idx, h in raw["nodes"]],
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise RecorderError(f"spool {self.path} line {number} is corrupt: {exc}") from exc

    def replay(self, conn: Connection, log_id: int) -> int:
        """Write every spooled record the database lacks, in order; return how many were written.

        The caller owns the transaction and MUST call :meth:`clear` only after it commits.
        """
        size = log_size(conn, log_id)
        written = 0
        for batch in self.batches():
            have = [r for r in batch.records if r.seq < size]
            if have:
                stored = StoredNodeSource(conn, log_id).get_nodes(0, have[0].seq, have[-1].seq + 1)
                for record, leaf in zip(have, stored, strict=True):
                    if record.leaf != leaf:
                        raise VerificationError(
                            f"spooled record {record.seq} differs from the database: expected "
                            f"leaf {leaf.hex()}, spool has {record.leaf.hex()}"
                        )
            missing = [r for r in batch.records if r.seq >= size]
            if not missing:
                continue
            if missing[0].seq != size:
                raise RecorderError(
                    f"spool gap: database has {size} records, spool resumes at {missing[0].seq}"
                )
            nodes = [n for n in batch.nodes if (n[1] + 1) << n[0] > size]
            append_batch(conn, log_id, missing, nodes)
            size = missing[-1].seq + 1
            written += len(missing)
        return written

    def clear(self) -> None:
        """Remove the spool once its content is committed to the database."""
        if self.path.exists():
            self.path.unlink()
            _fsync_dir(self.path.parent)


def log_size(conn: Connection, log_id: int) -> int:
    """Number of records the database holds for the log (last ``seq`` + 1)."""
    last = conn.execute(
        select(func.max(records_table.c.seq)).where(records_table.c.log_id == log_id)
    ).scalar_one()
    return 0 if last is None else int(last) + 1


def _record(row: list[object]) -> Record:
    seq, kind, request_id, req_seq, ts, tenant, body_b64, payload_b64 = row
    body = base64.b64decode(str(body_b64), validate=True)
    payload = None if payload_b64 is None else base64.b64decode(str(payload_b64), validate=True)
    return Record(
        seq=int(seq),  # type: ignore[call-overload]
        kind=RecordKind(str(kind)),
        request_id=None if request_id is None else str(request_id),
        req_seq=None if req_seq is None else int(req_seq),  # type: ignore[call-overload]
        ts=int(ts),  # type: ignore[call-overload]
        tenant=None if tenant is None else str(tenant),
        body=body,
        leaf=leaf_hash(body),
        payload=payload,
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
