"""Engine events -> ledger records: what each event becomes in the log (docs/FORMAT.md 3.3).

- ``RequestStarted`` -> ``request.start`` (identity, model references, parameters; the prompt in
  the payload);
- ``BatchStep`` -> one ``tokens`` record per request in the step (de-interleaved, in the order of
  each request's first token), then the step's ``step`` manifest, which closes it;
- ``RequestFinished`` -> ``request.end``.

:func:`~auditlog.recorder.checks.check_event` runs first, in the caller's thread
(``AuditRecorder.record``), so that an event that cannot be recorded is refused at once with a
clear error; the writer then builds the records it composes itself on the ledger's trusted path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auditlog.errors import AuditlogError
from auditlog.events import BatchStep, Event, FinishReason, RequestFinished, RequestStarted
from auditlog.ledger import RecordKind, payload_bytes
from auditlog.ledger.tokens_record import tokens_payload

from .checks import safe_text, start_fields, start_payload
from .deinterleave import deinterleave
from .sequencer import LogSequencer

__all__ = ["Increments", "interrupt_open_chains", "sequence_events"]


@dataclass(slots=True)
class Increments:
    """What a group of events adds to the durability watermarks once committed."""

    started: set[str] = field(default_factory=set)
    tokens: dict[str, int] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    num_tokens: int = 0
    failed: dict[str, Exception] = field(default_factory=dict)


def sequence_events(
    seq: LogSequencer, events: list[Event], failed: set[str] | None = None
) -> Increments:
    """Append the records of ``events`` (already checked) to ``seq``, in order.

    Failure isolation: an event whose records cannot be built (the gate missed something) fails
    its request alone. The request's chain is closed with a ``request.end`` of reason ``error``
    (or, when not even its start could be built, an ``admin`` record says so), its id goes into
    ``failed`` (and ``inc.failed``), and its later events are skipped; every other request goes
    on. Building a record changes nothing until it is appended, so a failure leaves ``seq``
    consistent.
    """
    inc = Increments()
    failed = set() if failed is None else failed
    for event in events:
        if isinstance(event, BatchStep):
            _sequence_step(seq, event, inc, failed)
        elif event.request_id in failed:
            continue
        else:
            try:
                _sequence_request_event(seq, event, inc)
            except (AuditlogError, ValueError, TypeError) as exc:
                _fail_request(seq, event.request_id, event.ts, exc, inc, failed)
    return inc


def _sequence_request_event(
    seq: LogSequencer, event: RequestStarted | RequestFinished, inc: Increments
) -> None:
    if isinstance(event, RequestStarted):
        seq.append(
            RecordKind.REQUEST_START,
            ts=event.ts,
            request_id=event.request_id,
            tenant=event.tenant,
            payload=payload_bytes(start_payload(event)),
            fields=start_fields(event),
        )
        inc.started.add(event.request_id)
    else:
        seq.append(
            RecordKind.REQUEST_END,
            ts=event.ts,
            request_id=event.request_id,
            fields={
                "reason": event.reason.value,
                "n_generated": event.n_generated,
                "n_delivered": event.n_delivered,
                "error": event.error,
            },
        )
        inc.ended.add(event.request_id)


def _sequence_step(seq: LogSequencer, event: BatchStep, inc: Increments, failed: set[str]) -> None:
    """One ``tokens`` record per request of the step, then the step's manifest (the hot loop:
    names bound once, the payload encoded straight to canonical bytes, no keyword calls)."""
    batch: list[list[Any]] = []
    ts, step = event.ts, event.step_id
    append_tokens = seq.append_tokens
    tokens = inc.tokens
    num_tokens = 0
    for request_id, token_ids, provenance, drafts in deinterleave(event):
        if request_id in failed:
            continue
        n = len(token_ids)
        try:
            payload = tokens_payload(token_ids, drafts)
            append_tokens(request_id, ts, step, payload, n, provenance)
        except (AuditlogError, ValueError, TypeError) as exc:
            _fail_request(seq, request_id, ts, exc, inc, failed)
            continue
        batch.append([request_id, n])
        tokens[request_id] = tokens.get(request_id, 0) + n
        num_tokens += n
    inc.num_tokens += num_tokens
    # The manifest closes the step: it follows the step's tokens records, and lists exactly the
    # requests whose tokens records were written.
    seq.append(
        RecordKind.STEP,
        ts=ts,
        fields={"step": step, "batch": batch, "n": num_tokens, "passes": event.num_target_passes},
        trusted=True,
    )


def _fail_request(
    seq: LogSequencer,
    request_id: str,
    ts: int,
    exc: Exception,
    inc: Increments,
    failed: set[str],
) -> None:
    """End ``request_id`` with reason ``error`` (or note its refused start); see sequence_events."""
    failed.add(request_id)
    inc.failed[request_id] = exc
    message = safe_text(f"the recorder could not record an event of this request: {exc}")
    head = seq.heads.get(request_id)
    if head is not None:
        seq.append(
            RecordKind.REQUEST_END,
            ts=ts,
            request_id=request_id,
            fields={
                "reason": FinishReason.ERROR.value,
                "n_generated": head.num_tokens,
                "n_delivered": 0,
                "error": message,
            },
        )
        return
    seq.append(
        RecordKind.ADMIN,
        ts=ts,
        fields={"action": "event.refused", "subject": safe_text(request_id), "error": message},
    )


def interrupt_open_chains(seq: LogSequencer, now: int) -> list[str]:
    """Close every chain a previous process left open (crash recovery, C22); return their ids.

    The counts are null: the dead process's generated and delivered counts are unknowable; the
    trail's ``tokens`` records say what was recorded.
    """
    closed = sorted(seq.heads)
    for request_id in closed:
        seq.append(
            RecordKind.REQUEST_END,
            ts=now,
            request_id=request_id,
            fields={
                "reason": FinishReason.INTERRUPTED.value,
                "n_generated": None,
                "n_delivered": None,
                "error": "recorder restarted with this request still open",
            },
        )
    return closed
