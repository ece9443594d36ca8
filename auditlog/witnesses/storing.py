"""Write transactions of the background anchors (witness cosignatures, timestamps).

They run beside the recorder's writer. On SQLite a transaction that read first cannot always
become a writer while another connection writes ("database is locked", at once, whatever the
busy timeout): such a transaction is retried, with a growing pause, a bounded number of times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

__all__ = ["write_retrying"]

T = TypeVar("T")

#: Tries of one write; the pauses between them add up to about 10 s.
ATTEMPTS = 20


def write_retrying(engine: Engine, write: Callable[[Connection], T]) -> T:
    """Run ``write`` in a transaction of its own, again while SQLite reports a lock."""
    for attempt in range(ATTEMPTS):
        try:
            with engine.begin() as conn:
                return write(conn)
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
