"""The one exception root of auditlog.

Every error that auditlog raises on purpose derives from :class:`AuditlogError`, so that a caller
(and the CLI, in one place) can catch them all. Messages say what was expected and what was found,
and name the first bad index where there is one.
"""

from __future__ import annotations

__all__ = [
    "AuditlogError",
    "ConfigurationError",
    "ConflictError",
    "EngineError",
    "FormatError",
    "InvalidRequestError",
    "KeyUnavailableError",
    "LogRolledBackError",
    "NoCheckpointError",
    "NotFoundError",
    "RecorderError",
    "ReplayRefusedError",
    "StoreError",
    "UnrecordableEventError",
    "VerificationError",
]


class AuditlogError(Exception):
    """Root of every error auditlog raises on purpose."""


class ConfigurationError(AuditlogError):
    """Bad settings, a missing database or key file, an unusable URL."""


class FormatError(AuditlogError):
    """Bytes or values that do not follow docs/FORMAT.md (canonical JSON, notes, keys, bundles)."""


class VerificationError(AuditlogError):
    """An integrity check failed: a hash, a chain link, a proof or a signature does not match."""


class KeyUnavailableError(AuditlogError):
    """A payload key-encryption key is not held, or a wrapped data key cannot be unwrapped."""


class StoreError(AuditlogError):
    """The database refused or failed an operation."""


class NotFoundError(AuditlogError):
    """The thing asked for does not exist (or is not visible to the caller)."""


class NoCheckpointError(NotFoundError):
    """No checkpoint signed by a trusted key covers the thing asked for yet (retry later)."""


class ConflictError(AuditlogError):
    """The store holds two answers where there must be one (two logs claim one request id):
    readers refuse rather than choose."""


class RecorderError(AuditlogError):
    """The recorder cannot accept or persist events (closed, failed, misconfigured)."""


class LogRolledBackError(RecorderError):
    """A recorder refuses to resume a log that a witness has cosigned larger than the database
    holds, or with another tree: the database was rolled back or rewritten, and appending would
    fork the log (C10). Nothing is appended; the operator must restore the missing tail."""


class UnrecordableEventError(RecorderError):
    """One event cannot be recorded as it is (a lone surrogate, a float, an integer out of range,
    an oversized field): it is refused alone, and the recorder goes on for every other request.

    A server answers it with 400: the request is refused, never served unrecorded (C23).
    """


class EngineError(AuditlogError):
    """The inference engine failed."""


class InvalidRequestError(EngineError):
    """One request is invalid (prompt too long, unknown token, bad sampling parameters).

    The engine rejects that request alone and keeps serving the others.
    """


class ReplayRefusedError(AuditlogError):
    """A request cannot be replayed: no replay envelope, numerics that are not batch-invariant,
    no seed, erased content, or no model file with the recorded digest. The message says which.
    """
