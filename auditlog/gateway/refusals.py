"""The small trail of a refused request: who asked, what was refused and why, never its content.

Shared by ``auditlog serve`` and the ASGI middleware. A request refused before it ran (over the
payload limit, a malformed body, a bad key) is still an attempt someone made, so it is recorded
(C1, C3): a ``request.start`` with an empty prompt whose ``params`` say what was refused
(``refused``: the error code, ``status``: the HTTP status, ``path``, and for a request over the
payload limit ``size`` and ``limit`` in bytes), then a ``request.end`` with reason ``error``.
Nothing of the refused body is in it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from auditlog.events import FinishReason, ModelRef, RequestFinished, RequestStarted
from auditlog.recorder.kinds import Recorder

from .auth import Identity

__all__ = ["UNKNOWN_MODEL", "record_refusal", "refusal_events"]

#: The model reference of a request refused before its body was read.
UNKNOWN_MODEL = ModelRef(name="", weights_sha256="", tokenizer_sha256="", architecture="unknown")


def refusal_events(
    *,
    request_id: str,
    identity: Identity,
    params: Mapping[str, Any],
    message: str,
    engine: str,
    target: ModelRef = UNKNOWN_MODEL,
) -> tuple[RequestStarted, RequestFinished]:
    """The two events of a refusal trail (module docstring); ``params`` hold no content."""
    start = RequestStarted(
        request_id=request_id,
        tenant=identity.tenant,
        principal=identity.principal,
        prompt_token_ids=(),
        prompt_text="",
        params=dict(params),
        target=target,
        draft=None,
        ts=time.time_ns(),
        engine=engine,
        client=identity.client,
    )
    end = RequestFinished(
        request_id=request_id,
        reason=FinishReason.ERROR,
        n_generated=0,
        n_delivered=0,
        ts=time.time_ns(),
        error=message,
    )
    return start, end


async def record_refusal(
    recorder: Recorder, events: tuple[RequestStarted, RequestFinished], *, fail_closed: bool
) -> None:
    """Record a refusal trail; fail-closed (C21), return only once its end is durable."""
    start, end = events
    recorder.record(start)
    recorder.record(end)
    if fail_closed:
        await recorder.wait_closed_async(start.request_id)
