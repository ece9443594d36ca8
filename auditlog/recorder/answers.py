"""The process recorder's flushes that wait for the child's answer (recorder/process.py).

``flush()`` and ``checkpoint_now()`` send a numbered request and wait for the child's FLUSHED
reply with that number. An answer never comes when the child fails or ends: then every flush
still waiting is answered with the failure (:meth:`PendingFlushes.release`), so none hangs.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from auditlog.errors import RecorderError

__all__ = ["PendingFlushes"]


class _Slot:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class PendingFlushes:
    """Numbered flushes waiting for their answer (thread-safe). ``lock`` also guards what the
    recorder sets together with them (its failure), so no flush is left unanswered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._slots: dict[int, _Slot] = {}

    def add(self, check: Callable[[], None]) -> tuple[int, _Slot]:
        """A new waiting flush, once ``check`` (run under the lock) has not raised."""
        number, slot = next(self._numbers), _Slot()
        with self.lock:
            check()
            self._slots[number] = slot
        return number, slot

    def wait(self, number: int, slot: _Slot, what: str, timeout: float | None) -> None:
        """Block until answered; raise the answer's error, or on ``timeout``."""
        if not slot.done.wait(timeout):
            with self.lock:
                self._slots.pop(number, None)
            raise RecorderError(f"{what} did not complete within {timeout} s")
        if slot.error is not None:
            raise RecorderError(f"recorder failed: {slot.error}") from slot.error

    def answer(self, number: int, error: BaseException | None) -> None:
        """The child's answer to flush ``number`` (one that timed out is gone: ignored)."""
        with self.lock:
            slot = self._slots.pop(number, None)
        if slot is not None:
            slot.error = error
            slot.done.set()

    def release(self, error: BaseException) -> None:
        """Answer every flush still waiting with ``error``: no answer will come for it."""
        with self.lock:
            slots = list(self._slots.values())
            self._slots.clear()
        for slot in slots:
            slot.error = error
            slot.done.set()
