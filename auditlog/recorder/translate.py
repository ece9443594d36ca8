"""Engine events -> ledger records: what each event becomes in the log (docs/FORMAT.md 3.3).

- ``RequestStarted`` -> ``request.start`` (identity, model references, parameters; the prompt in
  the payload);
- ``BatchStep`` -> one ``tokens`` record per request in the step (de-interleaved, in the order of
  each request's first token), then the step's ``step`` manifest, which closes it;
- ``RequestFinished`` -> ``request.end``.

:func:`check_event` runs in the caller's thread (``AuditRecorder.record``) so that an event that
cannot be recorded is refused at once with a clear error; the writer then builds the records it
composes itself on the ledger's trusted path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from auditlog.errors import FormatError, RecorderError
from auditlog.events import (
    BatchStep,
    Event,
    FinishReason,
    ModelRef,
    Provenance,
    RequestFinished,
    RequestStarted,
)
from auditlog.ledger import MAX_SAFE_INTEGER, RecordKind, payload_bytes
from auditlog.ledger.canonical import check_canonical_subset

from .deinterleave import deinterleave
from .sequencer import LogSequencer

__all__ = ["Increments", "check_event", "interrupt_open_chains", "sequence_events"]

_PROVENANCE_CODE = {p: p.value for p in Provenance}

#: The clock every ``ts`` of the engine events comes from (C2), named in each ``request.start``:
#: the system real-time clock read as integer nanoseconds since the Unix epoch, UTC
#: (``time.time_ns``, POSIX CLOCK_REALTIME).
CLOCK = "CLOCK_REALTIME ns since 1970-01-01T00:00:00Z"


@dataclass(slots=True)
class Increments:
    """What a group of events adds to the durability watermarks once committed."""

    started: set[str] = field(default_factory=set)
    tokens: dict[str, int] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    num_tokens: int = 0


#: Times must stay below 10^20 ns (docs/FORMAT.md: ``ts`` is at most 20 decimal digits).
MAX_TS = 10**20 - 1
#: Indexed string columns (request id, tenant) are at most this long in the store.
MAX_ID_LENGTH = 255


def check_event(event: Event) -> None:
    """Raise :class:`RecorderError` unless ``event`` can be recorded as it is.

    Everything the writer would otherwise refuse later (types, integer ranges, times, lengths) is
    checked here, so one bad event is refused to its caller and never stops the writer.
    """
    if isinstance(event, BatchStep):
        _check_step(event)
    elif isinstance(event, RequestStarted):
        _check_start(event)
    elif isinstance(event, RequestFinished):
        _check_id(event.request_id, "request id")
        _check_ts(event.ts, f"request {event.request_id!r}")
        counts = (event.n_generated, event.n_delivered)
        if not all(type(n) is int and 0 <= n <= MAX_SAFE_INTEGER for n in counts):
            raise RecorderError(f"request {event.request_id!r}: bad end counts {counts}")
        if type(event.error) is not str:
            raise RecorderError(f"request {event.request_id!r}: error must be a string")
        if not isinstance(event.reason, FinishReason):
            raise RecorderError(f"request {event.request_id!r}: unknown reason {event.reason!r}")
    else:
        raise RecorderError(f"not an auditlog event: {type(event).__name__}")


def _check_id(value: object, what: str) -> None:
    if type(value) is not str or not 0 < len(value) <= MAX_ID_LENGTH:
        raise RecorderError(f"{what} must be a string of 1 to {MAX_ID_LENGTH} characters")


def _check_ts(ts: object, where: str) -> None:
    if type(ts) is not int or not 0 <= ts <= MAX_TS:
        raise RecorderError(f"{where}: ts must be integer nanoseconds in [0, 10^20)")


def _check_token_ids(ids: tuple[int, ...], where: str) -> None:
    if ids and not (
        set(map(type, ids)) == {int}
        and min(ids) >= -MAX_SAFE_INTEGER
        and max(ids) <= MAX_SAFE_INTEGER
    ):
        raise RecorderError(f"{where}: token ids must be integers within ±(2^53-1)")


def _check_start(event: RequestStarted) -> None:
    _check_id(event.request_id, "request id")
    where = f"request {event.request_id!r}"
    _check_id(event.tenant, f"{where}: tenant")
    strings = (event.principal, event.prompt_text, event.engine, event.client)
    if not all(type(s) is str for s in strings):
        raise RecorderError(f"{where}: principal, prompt text, engine and client must be strings")
    _check_ts(event.ts, where)
    _check_token_ids(event.prompt_token_ids, f"{where}: prompt")
    for ref in (event.target, event.draft):
        if ref is not None and not all(
            type(v) is str
            for v in (ref.name, ref.weights_sha256, ref.tokenizer_sha256, ref.architecture)
        ):
            raise RecorderError(f"{where}: model references must be strings")
    try:
        check_canonical_subset(dict(event.params))
        if event.replay is not None:
            if not isinstance(event.replay, Mapping):
                raise FormatError(f"replay envelope must be a mapping, got {event.replay!r}")
            check_canonical_subset(dict(event.replay))
    except FormatError as exc:
        raise RecorderError(
            f"{where}: parameters or replay envelope cannot be recorded exactly ({exc}); "
            "write non-integers as decimal strings"
        ) from exc


def _check_step(step: BatchStep) -> None:
    if not (type(step.step_id) is int and 0 <= step.step_id <= MAX_SAFE_INTEGER):
        raise RecorderError(f"step id must be a non-negative integer, got {step.step_id!r}")
    where = f"step {step.step_id}"
    _check_ts(step.ts, where)
    if type(step.num_target_passes) is not int or not 0 <= step.num_target_passes <= 2**31:
        raise RecorderError(f"{where}: num_target_passes must be a small integer")
    _check_token_ids(step.token_ids, where)
    if step.request_ids and set(map(type, step.request_ids)) != {str}:
        raise RecorderError(f"{where}: request ids must be strings")
    if not set(step.provenance) <= _PROVENANCE_CODE.keys():
        raise RecorderError(f"{where}: unknown provenance code")
    for request_id, proposals in step.drafts.items():
        _check_id(request_id, f"{where}: draft request id")
        _check_token_ids(tuple(proposals), f"{where}: drafts of {request_id!r}")


def sequence_events(seq: LogSequencer, events: list[Event]) -> Increments:
    """Append the records of ``events`` (already checked) to ``seq``, in order."""
    inc = Increments()
    tokens = inc.tokens
    for event in events:
        if isinstance(event, BatchStep):
            runs = deinterleave(event)
            for run in runs:
                n = len(run.token_ids)
                seq.append(
                    RecordKind.TOKENS,
                    ts=event.ts,
                    request_id=run.request_id,
                    payload=payload_bytes(
                        {"token_ids": run.token_ids, "drafts": run.drafts}, trusted=True
                    ),
                    fields={
                        "step": event.step_id,
                        "n": n,
                        "prov": run.provenance,  # StrEnum members: orjson writes their values
                    },
                    trusted=True,
                )
                tokens[run.request_id] = tokens.get(run.request_id, 0) + n
            # The manifest closes the step: it follows the step's tokens records.
            seq.append(
                RecordKind.STEP,
                ts=event.ts,
                fields={
                    "step": event.step_id,
                    "batch": [[run.request_id, len(run.token_ids)] for run in runs],
                    "n": len(event.token_ids),
                    "passes": event.num_target_passes,
                },
                trusted=True,
            )
            inc.num_tokens += len(event.token_ids)
        elif isinstance(event, RequestStarted):
            seq.append(
                RecordKind.REQUEST_START,
                ts=event.ts,
                request_id=event.request_id,
                tenant=event.tenant,
                payload=payload_bytes(
                    {
                        "prompt_token_ids": list(event.prompt_token_ids),
                        "prompt_text": event.prompt_text,
                    }
                ),
                fields=_start_fields(event),
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
    return inc


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


def _start_fields(event: RequestStarted) -> dict[str, Any]:
    fields = {
        "clock": CLOCK,
        "principal": event.principal,
        "client": event.client,
        "engine": event.engine,
        "params": dict(event.params),
        "target": _model_ref(event.target),
        "draft": None if event.draft is None else _model_ref(event.draft),
    }
    if event.replay is not None:  # absent: the engine recorded no replay envelope
        fields["replay"] = dict(event.replay)
    return fields


def _model_ref(ref: ModelRef) -> dict[str, Any]:
    return {
        "name": ref.name,
        "weights_sha256": ref.weights_sha256,
        "tokenizer_sha256": ref.tokenizer_sha256,
        "architecture": ref.architecture,
    }
