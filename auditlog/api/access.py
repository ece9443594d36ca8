"""The auditor API's own access log (C18): every read becomes an ``access`` record first.

The API is the single writer of its log (origin ``settings.api_origin``, its own signing key),
through a :class:`~auditlog.recorder.LogSequencer`. Contract:

- :meth:`AccessLog.record` MUST return only after the transaction holding the ``access`` record
  (and a checkpoint signed over it) has committed; the caller MUST NOT send any content before.
- If the record cannot be written, :meth:`AccessLog.record` raises :class:`AccessLogUnavailable`
  and the caller MUST answer 503 with no content. The in-memory sequencer state is then dropped
  and resumed from the database on the next write, so a failed write leaves no hole or fork.
- One writer per log: the access log takes the log's writer lock (``auditlog.store.WriterLock``)
  before its first write and holds it until :meth:`AccessLog.close`, so a second API process, or
  a recorder, on the same origin is refused; and it refuses an origin whose log holds anything
  but ``access`` records (an inference log is never appended to by the API).
- Each checkpoint goes to every witness after its commit, like any other log's (C10).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from sqlalchemy import Connection, Engine

from auditlog.errors import AuditlogError, ConfigurationError, FormatError
from auditlog.ledger import RecordKind, Signer
from auditlog.recorder import LogSequencer, Witness
from auditlog.store import WriterLock
from auditlog.store.ledger_store import StoredCheckpoint, append_batch, register_key
from auditlog.store.log_registry import log_holds_other_kinds

from .keys import ApiKey

#: Query parameters copied into an ``access`` record: at most this many, names and values cut to
#: these lengths (a value cut keeps its length and SHA-256, so what was sent stays identifiable).
MAX_PARAMS = 32
MAX_PARAM_NAME = 64
MAX_PARAM_VALUE = 256


def cap_params(params: Mapping[str, Any]) -> dict[str, str]:
    """The query parameters as an access record keeps them: bounded in number and size."""
    out: dict[str, str] = {}
    items = list(params.items())
    for name, value in items[:MAX_PARAMS]:
        out[_cut(str(name), MAX_PARAM_NAME)] = _cut(str(value), MAX_PARAM_VALUE)
    if len(items) > MAX_PARAMS:
        out["…"] = f"{len(items) - MAX_PARAMS} more parameters not recorded"
    return out


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{text[:limit]}…[{len(text)} characters, sha256 {digest}]"


__all__ = ["AccessLog", "AccessLogUnavailable"]

log = structlog.get_logger("auditlog.api.access")


class AccessLogUnavailable(AuditlogError):
    """The access record could not be committed; the read MUST NOT be answered (503)."""


class AccessLog:
    """Writer of the API's access log (thread-safe: one lock serialises the writes)."""

    def __init__(
        self,
        *,
        engine: Engine,
        origin: str,
        signer: Signer,
        witnesses: Sequence[Witness] = (),
    ) -> None:
        self.engine = engine
        self.origin = origin
        self.signer = signer
        self.witnesses = list(witnesses)
        self._lock = threading.Lock()
        self._sequencer: LogSequencer | None = None
        self._writer_lock: WriterLock | None = None

    def open(self) -> None:
        """Take the log's writer lock and check the origin is an access log; raises
        :class:`ConfigurationError` (WriterLockError) when another writer owns the origin."""
        with self._lock:
            self._open()

    def _open(self) -> None:
        if self._writer_lock is not None:
            return
        lock = WriterLock(engine=self.engine, origin=self.origin)
        lock.acquire()
        try:
            with self.engine.connect() as conn:
                if log_holds_other_kinds(conn, self.origin, RecordKind.ACCESS):
                    raise ConfigurationError(
                        f"origin {self.origin!r} is the log of another writer (it holds records "
                        "other than access records); give the API its own --origin"
                    )
        except BaseException:
            lock.release()
            raise
        self._writer_lock = lock

    def close(self) -> None:
        """Release the writer lock (the next write takes it again)."""
        with self._lock:
            if self._writer_lock is not None:
                self._writer_lock.release()
                self._writer_lock = None
            self._sequencer = None

    def record(
        self,
        *,
        key: ApiKey,
        endpoint: str,
        request_ids: Sequence[str],
        reason: str | None,
        status: int,
        params: Mapping[str, Any],
    ) -> int:
        """Commit one ``access`` record and a checkpoint covering it; returns its ``seq``.

        Fields (who, when, what, why): ``principal`` = the API key id, ``role``, ``ts`` (now),
        ``endpoint`` (route template), ``params`` (query parameters as strings, capped by
        :func:`cap_params`: a signed record is kept for years),
        ``request_ids`` (the requests the answer concerns), ``status`` (HTTP status about to be
        sent), ``reason`` (the ``X-Audit-Reason`` header or null).
        """
        fields = {
            "principal": key.id,
            "role": str(key.role),
            "endpoint": endpoint,
            "params": cap_params(params),
            "request_ids": list(request_ids),
            "status": status,
            "reason": reason,
        }
        with self._lock:
            try:
                self._open()
                return self._write(fields)
            except Exception as exc:  # any failure: fail closed, resume from the database later
                self._sequencer = None
                log.error("access_log.write_failed", origin=self.origin, error=str(exc))
                raise AccessLogUnavailable(f"access record could not be written: {exc}") from exc

    def _register_key(self, conn: Connection, log_id: int, now: int) -> None:
        """Keep the access log's public key in ``signing_keys`` (C12)."""
        try:
            register_key(conn, log_id, self.signer.verifier_key, created=now)
        except FormatError as exc:  # the store refuses the key string: the log still works
            log.warning("access_log.key_not_registered", origin=self.origin, error=str(exc))

    def _write(self, fields: dict[str, Any]) -> int:
        now = time.time_ns()
        with self.engine.begin() as conn:
            sequencer = self._sequencer
            if sequencer is None:
                sequencer = LogSequencer.resume(conn, self.origin)
                self._register_key(conn, sequencer.log_id, now)
            record = sequencer.append(RecordKind.ACCESS, ts=now, fields=fields)
            batch = sequencer.drain()
            checkpoint, note = sequencer.checkpoint([self.signer])
            append_batch(
                conn,
                sequencer.log_id,
                batch.records,
                batch.nodes,
                checkpoint=StoredCheckpoint(
                    size=checkpoint.size, root=checkpoint.root, note=note, ts=now
                ),
            )
        self._sequencer = sequencer
        for witness in self.witnesses:  # after the commit, like the recorder (C10)
            try:
                witness.submit(checkpoint.origin, checkpoint.size, note)
            except Exception:
                log.exception("access_log.witness_failed", origin=self.origin)
        return record.seq
