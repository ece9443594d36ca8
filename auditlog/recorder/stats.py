"""Counters of a running recorder."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RecorderStats"]


@dataclass(slots=True)
class RecorderStats:
    """Counters readable while the recorder runs."""

    events: int = 0
    records: int = 0
    tokens: int = 0
    flushes: int = 0
    checkpoints: int = 0
    spooled_batches: int = 0
    replayed_records: int = 0
    interrupted_on_resume: int = 0
    witnesses_unanswered_on_resume: int = 0  # policy witnesses not asked: rollback not excluded
    last_flush_ms: float = 0.0
    max_flush_ms: float = 0.0
    queue_depth: int = 0
    records_per_s: float = 0.0
