"""The recorder: de-interleaves engine events into per-request chains and persists them durably."""

from __future__ import annotations

from .deinterleave import TokenRun, deinterleave
from .recorder import AuditRecorder, FailMode, RecorderStats, Witness
from .sequencer import LogSequencer

__all__ = [
    "AuditRecorder",
    "FailMode",
    "LogSequencer",
    "RecorderStats",
    "TokenRun",
    "Witness",
    "deinterleave",
]
