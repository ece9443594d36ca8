"""One writer per log: the lock a writer holds for as long as it appends to a log.

A log MUST have exactly one writer (docs/DESIGN.md section 3): two would assign the same ``seq``
and fork the Merkle tree. Every writer (the recorder, the auditor API's access log) takes this
lock for its origin before it resumes the log, and keeps it until it closes:

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a 64-bit key derived
  from the origin, held by a dedicated connection of the writer. The server drops it when that
  session ends, so a writer that dies never leaves a stale lock.
- SQLite: an exclusive ``flock`` on a file beside the database (``<db>.<key>.writer-lock``),
  removed by the writer when it releases the lock. The operating system drops the lock when the
  process dies (the file then stays, unlocked, and is reused). In-memory databases are private to
  their process and need none.

A second writer is refused at once with :class:`WriterLockError`, naming the origin.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from auditlog.errors import ConfigurationError

__all__ = ["WriterLock", "WriterLockError", "writer_lock_key"]


class WriterLockError(ConfigurationError):
    """Another writer holds the log (one writer per log)."""


def writer_lock_key(origin: str) -> int:
    """Signed 64-bit advisory lock key of ``origin``: the first 8 bytes of
    SHA-256("auditlog writer lock\\x00" || origin), big-endian."""
    digest = hashlib.sha256(b"auditlog writer lock\x00" + origin.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class WriterLock:
    """The writer lock of one log (module docstring). ``acquire`` then ``release``."""

    def __init__(self, *, engine: Engine, origin: str) -> None:
        self.engine = engine
        self.origin = origin
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None

    def acquire(self) -> None:
        """Take the lock; raises :class:`WriterLockError` when another writer holds it."""
        key = writer_lock_key(self.origin)
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            conn = self.engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()  # the lock is the session's; end the transaction that took it
            if not got:
                conn.close()
                raise self._busy("a PostgreSQL advisory lock is held by another session")
            self._conn = conn
        elif dialect == "sqlite":
            path = self._sqlite_lock_path(key)
            if path is not None:
                self._file = _flock(path, self._busy)

    def ensure(self) -> None:
        """Check the lock is still held, taking it again if its PostgreSQL session was lost (a
        database outage ends the session and with it the lock). Raises WriterLockError when
        another writer took the log meanwhile, and the driver's error while the database is
        still unreachable."""
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT 1")).scalar()
            self._conn.commit()
            return
        except DBAPIError:
            self._conn.invalidate()
            self._conn.close()
            self._conn = None
        self.acquire()

    def release(self) -> None:
        """Drop the lock (idempotent). A lost session has dropped it already."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.execute(
                    text("SELECT pg_advisory_unlock(:k)"), {"k": writer_lock_key(self.origin)}
                )
                conn.commit()
            except DBAPIError:
                conn.invalidate()  # the session is gone, and its lock with it
            finally:
                conn.close()
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                os.unlink(file.name)  # while still locked: no file is left beside the database
            file.close()  # closing the file drops the flock

    def _sqlite_lock_path(self, key: int) -> Path | None:
        database = self.engine.url.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            return None
        return Path(f"{database}.{key & (2**64 - 1):016x}.writer-lock")

    def _busy(self, how: str) -> WriterLockError:
        return WriterLockError(
            f"log {self.origin!r} already has a writer ({how}); one writer per log: stop the "
            "other writer, or use another origin"
        )


def _flock(path: Path, busy: Callable[[str], WriterLockError]) -> IO[bytes]:
    """Open and lock ``path``. The holder unlinks the file on release, so a lock taken on a file
    that was unlinked meanwhile is dropped and taken again on the new file."""
    import fcntl

    while True:
        file = open(path, "a+b")  # noqa: SIM115 (held open for the writer's lifetime)
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().decode("ascii", "replace").strip() or "unknown"
            file.close()
            raise busy(f"the lock file {path} is held, by process {holder}") from None
        try:
            same = os.stat(path).st_ino == os.fstat(file.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        file.close()  # the previous holder unlinked it between our open and our lock
    file.truncate(0)
    file.write(f"{os.getpid()}\n".encode("ascii"))
    file.flush()
    return file
