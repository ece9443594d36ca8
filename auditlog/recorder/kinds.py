"""Which recorder a server runs: the writer in a thread of its process, or in a child process.

:func:`open_recorder` is the one place ``auditlog serve`` and ``auditlog demo`` open their
recorder (setting ``recorder_kind``, option ``--recorder``). The thread recorder is the default:
docs/PERFORMANCE.md (Recorder) has the measurements of both.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any

from auditlog.ledger import Signer

from .process import ProcessRecorder
from .recorder import AuditRecorder

__all__ = ["Recorder", "RecorderKind", "open_recorder"]

#: Either recorder: the same public surface (record, wait_durable, flush, close, ...).
Recorder = AuditRecorder | ProcessRecorder


class RecorderKind(enum.StrEnum):
    """Where the recorder's writer (sequencing, group commit, checkpoints) runs."""

    THREAD = "thread"  # AuditRecorder: a writer thread in the engine's process
    PROCESS = "process"  # ProcessRecorder: an AuditRecorder in a child process


def open_recorder(
    kind: RecorderKind,
    db_url: str,
    *,
    origin: str,
    signers: Sequence[Signer],
    witnesses: Sequence[Any] = (),
    witness_factory: Callable[[], Sequence[Any]] | None = None,
    **options: Any,
) -> Recorder:
    """Open and start a recorder of ``kind`` on ``db_url`` (migrating it unless
    ``migrate=False``). ``witness_factory`` makes more witnesses where the writer runs (a child
    process builds its own background senders); for :attr:`RecorderKind.PROCESS` it, the
    ``witnesses`` and the options must pickle.
    """
    if kind is RecorderKind.PROCESS:
        return ProcessRecorder.open(
            db_url,
            origin=origin,
            signers=signers,
            witnesses=witnesses,
            witness_factory=witness_factory,
            **options,
        )
    made = list(witness_factory()) if witness_factory is not None else []
    return AuditRecorder.open(
        db_url, origin=origin, signers=signers, witnesses=[*witnesses, *made], **options
    )
