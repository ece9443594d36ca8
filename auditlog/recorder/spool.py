"""The outage spool: an append-only local file of sequenced batches, replayed in order.

When the database cannot be reached the writer thread (recorder/commit.py) appends each flush
here, one line per batch, and fsyncs before it acknowledges anything (docs/DESIGN.md section 5).
Replay (:meth:`Spool.replay`) writes the batches to the database in order, skipping every record
whose index the database already holds (after checking its leaf is the same), so nothing is lost
and nothing is written twice. A torn last line (a crash during the write) was never acknowledged and
is discarded.

Line format: JSON ``{"checkpoint": signed note of the tree after this batch, "nodes": [[level,
index, hash_hex], ...], "records": [[seq, kind, request_id, req_seq, ts, tenant, body_b64,
payload_b64 | null], ...]}`` + ``\\n``. Each line's checkpoint also goes to the witnesses when it
is spooled, so a spool edited or cut short is refused at replay, or caught by the witness.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from auditlog.crypto import DataKey
from auditlog.errors import AuditlogError, FormatError, RecorderError, VerificationError
from auditlog.ledger import (
    FindingCode,
    Record,
    RecordKind,
    Verifier,
    leaf_hash,
    open_checkpoint,
    parse_header,
)
from auditlog.ledger.chain import ChainChecker
from auditlog.store import StoredCheckpoint, StoredNodeSource, append_batch
from auditlog.store.schema import records as records_table

from .sequencer import ChainHead, LogSequencer, PendingBatch

__all__ = ["STATE_DIR_ENVVAR", "Spool", "default_state_dir", "is_outage", "spool_file"]

#: Environment variable naming the state directory (where outage spools live).
STATE_DIR_ENVVAR = "AUDITLOG_STATE_DIR"


def default_state_dir() -> Path:
    """``$AUDITLOG_STATE_DIR``, else ``$XDG_STATE_HOME/auditlog``, else ``~/.local/state/auditlog``.

    Never the working directory: a writer restarted from another directory finds its spool.
    """
    configured = os.environ.get(STATE_DIR_ENVVAR)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return Path(base).expanduser() / "auditlog"


def spool_file(state_dir: Path, origin: str) -> Path:
    """The spool of the log ``origin`` in ``state_dir``: ``spool-<safe origin>.jsonl``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in origin)
    return state_dir / f"spool-{safe}.jsonl"


_DB_UNAVAILABLE = (OperationalError, InterfaceError)


def is_outage(exc: BaseException) -> bool:
    """True for "the database cannot be reached" (spool and retry); False for an error the
    database would raise again (a constraint, a type): that fails the recorder loudly."""
    while exc is not None:
        if isinstance(exc, _DB_UNAVAILABLE) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated
        ):
            return True
        if isinstance(exc, DBAPIError):
            exc = exc.orig  # type: ignore[assignment]
            continue
        exc = exc.__cause__  # type: ignore[assignment]
    return False


class Spool:
    """Append-only spool file of one log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def append(self, batch: PendingBatch, checkpoint_note: str) -> None:
        """Append one batch with the signed checkpoint of the tree after it, and fsync.

        Returns only once the bytes are on disk. The checkpoint makes the spool tamper-evident:
        replay refuses any line whose records do not lead to its signed root.
        """
        line = orjson.dumps(
            {
                "checkpoint": checkpoint_note,
                "nodes": [[level, index, h.hex()] for level, index, h in batch.nodes],
                "data_keys": [
                    [k.request_id, k.tenant, k.kek_id, base64.b64encode(k.wrapped).decode()]
                    for k in batch.data_keys
                ],
                "records": [
                    [
                        r.seq,
                        r.kind.value,
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
        if new:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            _fsync_dir(self.path.parent)

    def batches(self) -> Iterator[tuple[int, PendingBatch, str]]:
        """(line number, batch, checkpoint note) in order; a torn final line is skipped."""
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            lines = fh.read().split(b"\n")
        # The last element is b"" after a complete final line, or a torn line never acknowledged.
        for number, line in enumerate(lines[:-1], start=1):
            try:
                raw = orjson.loads(line)
                batch = PendingBatch(
                    records=[_record(row) for row in raw["records"]],
                    nodes=[(lvl, idx, bytes.fromhex(h)) for lvl, idx, h in raw["nodes"]],
                    data_keys=[
                        DataKey(str(r), str(t), str(k), base64.b64decode(str(w), validate=True))
                        for r, t, k, w in raw.get("data_keys", [])
                    ],
                )
                note = raw["checkpoint"]
                if type(note) is not str:
                    raise TypeError("checkpoint is not a string")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, FormatError) as exc:
                raise RecorderError(f"spool {self.path} line {number} is corrupt: {exc}") from exc
            yield number, batch, note

    def replay(self, conn: Connection, *, origin: str, verifiers: Sequence[Verifier]) -> int:
        """Check and write every spooled record the database lacks, in order; return how many.

        Each spooled record MUST be a valid header of this log, extend its request chain, and
        each line MUST lead to the root its signed checkpoint states (a trusted key): otherwise
        nothing is written and :class:`RecorderError` names the line. The caller owns the
        transaction and MUST call :meth:`clear` only after it commits.
        """
        state = LogSequencer.resume(conn, origin)
        log_id, size = state.log_id, state.size
        frontier = state.frontier
        chains = _SpoolChains(state.heads)
        written = 0
        for number, batch, note in self.batches():
            where = f"spool {self.path} line {number}"
            have = [r for r in batch.records if r.seq < size]
            if have:
                stored = StoredNodeSource(conn, log_id).get_nodes(0, have[0].seq, have[-1].seq + 1)
                for record, leaf in zip(have, stored, strict=True):
                    if record.leaf != leaf:
                        raise VerificationError(
                            f"{where}: record {record.seq} differs from the database: expected "
                            f"leaf {leaf.hex()}, spool has {record.leaf.hex()}"
                        )
            missing = [r for r in batch.records if r.seq >= size]
            if not missing:
                continue
            if missing[0].seq != size:
                raise RecorderError(
                    f"{where}: gap: the database has {size} records, the spool resumes at "
                    f"{missing[0].seq}"
                )
            for record in missing:
                _check_spooled(record, origin, chains, where)
                frontier.append(record.leaf)
            try:
                cp = open_checkpoint(note, verifiers, origin=origin)
            except AuditlogError as exc:
                raise RecorderError(f"{where}: checkpoint does not verify: {exc}") from exc
            if cp.size != frontier.size or cp.root != frontier.root():
                raise RecorderError(
                    f"{where}: records do not lead to the signed checkpoint: expected size "
                    f"{cp.size} root {cp.root.hex()}, rebuilt size {frontier.size} root "
                    f"{frontier.root().hex()}"
                )
            nodes = [n for n in batch.nodes if (n[1] + 1) << n[0] > size]
            stored_cp = StoredCheckpoint(size=cp.size, root=cp.root, note=note, ts=time.time_ns())
            started = {r.request_id for r in missing if r.kind is RecordKind.REQUEST_START}
            keys = [k for k in batch.data_keys if k.request_id in started]
            append_batch(conn, log_id, missing, nodes, checkpoint=stored_cp, data_keys=keys)
            size = missing[-1].seq + 1
            written += len(missing)
        return written

    def clear(self) -> None:
        """Remove the spool once its content is committed to the database."""
        if self.path.exists():
            self.path.unlink()
            _fsync_dir(self.path.parent)


class _SpoolChains:
    """The log verifier's chain rules (:mod:`auditlog.ledger.chain`), continuing the chains the
    database left open; a finding is raised as :class:`RecorderError` naming the spool line.
    Step manifests are left to ``auditlog verify``: a spooled batch may resume mid-step."""

    def __init__(self, heads: dict[str, ChainHead]) -> None:
        self.where = ""
        self.rules = ChainChecker(self._refuse, check_steps=False)
        for rid, head in heads.items():
            self.rules.resume(rid, req_seq=head.req_seq, prev=head.leaf_hex, tenant=head.tenant)

    def _refuse(
        self, index: int | None, code: FindingCode, expected: object, got: object, msg: str
    ) -> None:
        if code is not FindingCode.CHAIN_OPEN:
            raise RecorderError(f"{self.where}: record {index} does not extend its request: {msg}")


def _check_spooled(record: Record, origin: str, chains: _SpoolChains, where: str) -> None:
    """A spooled record must be a valid header of ``origin`` that extends its request chain."""
    try:
        h = parse_header(record.body)
    except FormatError as exc:
        raise RecorderError(f"{where}: record {record.seq}: {exc}") from exc
    columns = (h["log"], h["seq"], h["kind"], h["request_id"], h["req_seq"], h["ts"])
    expected = (origin, record.seq, record.kind.value, record.request_id, record.req_seq, record.ts)
    if columns != expected or h.get("tenant") != record.tenant:
        raise RecorderError(f"{where}: record {record.seq} does not match its header")
    digest = h["payload"]
    actual = None if record.payload is None else hashlib.sha256(record.payload).hexdigest()
    if digest != actual:
        raise RecorderError(f"{where}: record {record.seq}: payload digest mismatch")
    chains.where = where
    chains.rules.check(record.seq, h, record.leaf, record.payload)


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
