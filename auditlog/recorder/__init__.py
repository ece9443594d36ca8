"""The recorder: de-interleaves engine events into per-request chains and persists them durably."""

from __future__ import annotations

from .deinterleave import TokenRun, deinterleave
from .limits import DEFAULT_MAX_PAYLOAD_BYTES, PayloadTooLargeError
from .process import ProcessRecorder
from .recorder import AuditRecorder, FailMode, RecorderStats, Witness
from .sequencer import LogSequencer

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "AuditRecorder",
    "FailMode",
    "LogSequencer",
    "PayloadTooLargeError",
    "ProcessRecorder",
    "RecorderStats",
    "TokenRun",
    "Witness",
    "deinterleave",
]
