"""auditlog: tamper-evident, per-request audit trails for batched and speculative LLM inference.

The top-level namespace is small on purpose: the event contract, the error root and the recorder.
Importing it opens no database, loads no model and changes no global setting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditlog.errors import AuditlogError, VerificationError
from auditlog.events import (
    BatchStep,
    FinishReason,
    ModelRef,
    Provenance,
    RequestFinished,
    RequestStarted,
)

if TYPE_CHECKING:
    from auditlog.recorder import AuditRecorder, FailMode

__version__ = "0.1.0"

__all__ = [
    "AuditRecorder",
    "AuditlogError",
    "BatchStep",
    "FailMode",
    "FinishReason",
    "ModelRef",
    "Provenance",
    "RequestFinished",
    "RequestStarted",
    "VerificationError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The recorder pulls in SQLAlchemy; load it on first use, not at import.
    if name in ("AuditRecorder", "FailMode"):
        from auditlog import recorder

        return getattr(recorder, name)
    raise AttributeError(f"module 'auditlog' has no attribute {name!r}")
