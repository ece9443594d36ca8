"""What an engine event's records hold, and the caller-side check that they can be encoded.

:func:`check_event` runs in the caller's thread (``AuditRecorder.record``, through the gate): it
builds the very values the writer will encode (``start_payload``, ``start_fields``) and refuses,
with :class:`~auditlog.errors.UnrecordableEventError`, whatever canonical encoding or the store
would refuse, so that one bad event never reaches (or stops) the writer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from auditlog.errors import FormatError, UnrecordableEventError
from auditlog.events import (
    BatchStep,
    Event,
    FinishReason,
    ModelRef,
    Provenance,
    RequestFinished,
    RequestStarted,
)
from auditlog.ledger import MAX_SAFE_INTEGER
from auditlog.ledger.canonical import canonical_json

__all__ = [
    "CLOCK",
    "MAX_ERROR_LENGTH",
    "MAX_HEADER_BYTES",
    "MAX_ID_LENGTH",
    "MAX_PAYLOAD_BYTES",
    "MAX_STEP_TOKENS",
    "MAX_TS",
    "check_event",
    "check_texts",
    "event_context",
    "safe_text",
    "start_fields",
    "start_payload",
]

_PROVENANCE_CODE = {p: p.value for p in Provenance}

#: The clock every ``ts`` of the engine events comes from (C2), named in each ``request.start``:
#: the system real-time clock read as integer nanoseconds since the Unix epoch, UTC
#: (``time.time_ns``, POSIX CLOCK_REALTIME).
CLOCK = "CLOCK_REALTIME ns since 1970-01-01T00:00:00Z"


_CONTROL = re.compile("[\x00-\x1f\x7f]")

#: Times must fit the store's signed 64-bit ``ts`` column (docs/FORMAT.md 3.1; so at most 19
#: decimal digits, within the header's 20): a larger one would stop the writer at the insert.
MAX_TS = 2**63 - 1
#: Indexed string columns (request id, tenant) are at most this long in the store.
MAX_ID_LENGTH = 255
#: Largest canonical payload of a ``request.start`` (prompt ids and text), in bytes.
MAX_PAYLOAD_BYTES = 16 * 2**20
#: Largest canonical header of a ``request.start`` (identity, parameters, model references).
MAX_HEADER_BYTES = 256 * 2**10
#: Most tokens (and draft proposals) one batch step may carry.
MAX_STEP_TOKENS = 2**20
#: Longest ``error`` text of a ``request.end``, in characters.
MAX_ERROR_LENGTH = 4096


def check_event(event: Event, checked_ids: AbstractSet[str] = frozenset()) -> None:
    """Raise :class:`UnrecordableEventError` unless ``event`` can be recorded exactly as it is.

    Everything the writer would otherwise refuse later is checked here, in the caller's thread:
    types, integer ranges, times, lengths, and the canonical encoding itself (a lone UTF-16
    surrogate in any string, a float, an integer beyond ±(2^53-1), an oversized field). One bad
    event is refused to its caller and never reaches (or stops) the writer.

    ``checked_ids``: request ids already checked as ids (the gate's open requests, checked at
    their start); a step's ids among them are only type-checked, not scanned again.
    """
    if isinstance(event, BatchStep):
        _check_step(event, checked_ids)
    elif isinstance(event, RequestStarted):
        _check_start(event)
    elif isinstance(event, RequestFinished):
        _check_id(event.request_id, "request id")
        where = f"request {event.request_id!r}"
        _check_ts(event.ts, where)
        counts = (event.n_generated, event.n_delivered)
        if not all(type(n) is int and 0 <= n <= MAX_SAFE_INTEGER for n in counts):
            raise UnrecordableEventError(f"{where}: bad end counts {counts}")
        _check_text(event.error, f"{where}: error", MAX_ERROR_LENGTH)
        if not isinstance(event.reason, FinishReason):
            raise UnrecordableEventError(f"{where}: unknown reason {event.reason!r}")
    else:
        raise UnrecordableEventError(f"not an auditlog event: {type(event).__name__}")


def _check_text(value: object, what: str, max_length: int) -> None:
    """A string of at most ``max_length`` characters that UTF-8 can encode (no lone surrogate)."""
    if type(value) is not str:
        raise UnrecordableEventError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > max_length:
        raise UnrecordableEventError(f"{what} is {len(value)} characters, at most {max_length}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UnrecordableEventError(
                f"{what} holds a lone UTF-16 surrogate at character {exc.start} "
                "(not valid Unicode text; it cannot be recorded)"
            ) from None


def check_texts(obj: object, where: str = "$") -> None:
    """Raise :class:`UnrecordableEventError` if a string anywhere in ``obj`` (dict keys and
    values, list items, nested) cannot be recorded: a lone surrogate, or longer than a payload.

    For callers that check a whole request body before it becomes an event (the server).
    """
    if isinstance(obj, str):
        _check_text(obj, where, MAX_PAYLOAD_BYTES)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            check_texts(key, f"{where} (a key)")
            check_texts(value, f"{where}.{safe_text(str(key))}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            check_texts(item, f"{where}[{i}]")


def _check_id(value: object, what: str) -> None:
    """Request ids and tenants are also stored in indexed text columns, which refuse NUL on
    PostgreSQL: no control characters there."""
    if type(value) is not str or not value:
        raise UnrecordableEventError(f"{what} must be a string of 1 to {MAX_ID_LENGTH} characters")
    _check_text(value, what, MAX_ID_LENGTH)
    if not value.isprintable() and _CONTROL.search(value) is not None:
        raise UnrecordableEventError(f"{what} holds a control character: {value!r}")


def _check_ts(ts: object, where: str) -> None:
    if type(ts) is not int or not 0 <= ts <= MAX_TS:
        raise UnrecordableEventError(f"{where}: ts must be integer nanoseconds in [0, 2^63)")


def _check_token_ids(ids: tuple[int, ...], where: str) -> None:
    if len(ids) > MAX_STEP_TOKENS:
        raise UnrecordableEventError(f"{where}: {len(ids)} token ids, at most {MAX_STEP_TOKENS}")
    if ids and not (
        set(map(type, ids)) == {int}
        and min(ids) >= -MAX_SAFE_INTEGER
        and max(ids) <= MAX_SAFE_INTEGER
    ):
        raise UnrecordableEventError(f"{where}: token ids must be integers within ±(2^53-1)")


def _encoded_size(obj: Any, what: str, max_bytes: int) -> int:
    """Size of the canonical bytes of ``obj``; raises unless they exist and fit ``max_bytes``."""
    try:
        size = len(canonical_json(obj))
    except FormatError as exc:
        raise UnrecordableEventError(f"{what} cannot be recorded exactly: {exc}") from None
    if size > max_bytes:
        raise UnrecordableEventError(f"{what} is {size} bytes encoded, at most {max_bytes}")
    return size


def _check_start(event: RequestStarted) -> None:
    _check_id(event.request_id, "request id")
    where = f"request {event.request_id!r}"
    _check_id(event.tenant, f"{where}: tenant")
    strings = (event.principal, event.prompt_text, event.engine, event.client)
    if not all(type(s) is str for s in strings):
        raise UnrecordableEventError(
            f"{where}: principal, prompt text, engine and client must be strings"
        )
    _check_ts(event.ts, where)
    _check_token_ids(event.prompt_token_ids, f"{where}: prompt")
    for ref in (event.target, event.draft):
        if ref is not None and not all(
            type(v) is str
            for v in (ref.name, ref.weights_sha256, ref.tokenizer_sha256, ref.architecture)
        ):
            raise UnrecordableEventError(f"{where}: model references must be strings")
    if not isinstance(event.params, Mapping):
        raise UnrecordableEventError(f"{where}: parameters must be a mapping")
    if event.replay is not None:
        if not isinstance(event.replay, Mapping):
            raise UnrecordableEventError(
                f"{where}: replay envelope cannot be recorded exactly: it must be a mapping, "
                f"got {type(event.replay).__name__}"
            )
        _encoded_size(dict(event.replay), f"{where}: replay envelope", MAX_HEADER_BYTES)
    # The very bytes the writer will build: whatever canonical encoding refuses is refused here.
    _encoded_size(start_payload(event), f"{where}: prompt", MAX_PAYLOAD_BYTES)
    _encoded_size(
        {**start_fields(event), "request_id": event.request_id, "tenant": event.tenant},
        f"{where}: identity, parameters and model references "
        "(write non-integer parameters as decimal strings)",
        MAX_HEADER_BYTES,
    )


def _check_step(step: BatchStep, checked_ids: AbstractSet[str]) -> None:
    if not (type(step.step_id) is int and 0 <= step.step_id <= MAX_SAFE_INTEGER):
        raise UnrecordableEventError(
            f"step id must be a non-negative integer, got {step.step_id!r}"
        )
    where = f"step {step.step_id}"
    _check_ts(step.ts, where)
    if type(step.num_target_passes) is not int or not 0 <= step.num_target_passes <= 2**31:
        raise UnrecordableEventError(f"{where}: num_target_passes must be a small integer")
    _check_token_ids(step.token_ids, where)
    request_ids = set(step.request_ids)
    if not set(map(type, request_ids)) <= {str}:  # an equal str subclass is not the id checked
        raise UnrecordableEventError(
            f"{where}: request id must be a string of 1 to {MAX_ID_LENGTH} characters"
        )
    for request_id in request_ids - checked_ids:
        _check_id(request_id, f"{where}: request id")
    if not set(step.provenance) <= _PROVENANCE_CODE.keys():
        raise UnrecordableEventError(f"{where}: unknown provenance code")
    if not isinstance(step.drafts, Mapping):
        raise UnrecordableEventError(f"{where}: drafts must be a mapping")
    num_proposed = 0
    for request_id, proposals in step.drafts.items():
        _check_id(request_id, f"{where}: draft request id")
        if not isinstance(proposals, (tuple, list)):
            raise UnrecordableEventError(f"{where}: drafts of {request_id!r} must be a sequence")
        _check_token_ids(tuple(proposals), f"{where}: drafts of {request_id!r}")
        num_proposed += len(proposals)
    if num_proposed > MAX_STEP_TOKENS:
        raise UnrecordableEventError(f"{where}: {num_proposed} draft proposals, too many")


def start_payload(event: RequestStarted) -> dict[str, Any]:
    return {"prompt_token_ids": list(event.prompt_token_ids), "prompt_text": event.prompt_text}


def start_fields(event: RequestStarted) -> dict[str, Any]:
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


def safe_text(text: str, max_length: int = MAX_ERROR_LENGTH) -> str:
    """``text`` with every lone surrogate written as ``\\udXXX``, cut to ``max_length``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:max_length]


def _model_ref(ref: ModelRef) -> dict[str, Any]:
    return {
        "name": ref.name,
        "weights_sha256": ref.weights_sha256,
        "tokenizer_sha256": ref.tokenizer_sha256,
        "architecture": ref.architecture,
    }


def event_context(event: object) -> dict[str, Any]:
    """Request id and step of an event, for structured logs."""
    if isinstance(event, BatchStep):
        ids = sorted(safe_text(str(rid)) for rid in set(event.request_ids))[:8]
        return {"step": event.step_id, "request_ids": ids}
    request_id = getattr(event, "request_id", None)
    return {"request_id": None if request_id is None else safe_text(str(request_id))}
