"""Helpers of the replay tests: one recorded run of the 24-request demo, made once per session.

The engine runs the demo's requests (several tenants, greedy and sampled, speculative decoding,
continuous batching) once; its events are kept and fed, in order, to a real ``AuditRecorder`` on
each test's database, so that every backend holds the same trail bytes the live demo would write.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from auditlog.events import BatchStep, Event, RequestStarted
from auditlog.ledger import Signer
from auditlog.recorder import AuditRecorder

ORIGIN = "test.example/replay-engine"
#: The demo draws 32..128 tokens per request; the tests cap it to stay quick on a small CPU.
MAX_TOKENS = 32
SIGNER = Signer(name=ORIGIN, seed=bytes(range(32)))


@dataclass
class DemoRun:
    events: list[Event]
    request_ids: list[str]
    tenants: dict[str, str]
    max_batch: int  # most requests that shared one physical step


def run_demo(num_requests: int = 24, **engine_options: object) -> DemoRun:
    """The demo's requests through ``LLMEngine.demo`` (options: e.g. ``config``)."""
    import torch

    from auditlog.cli.demo_cmd import demo_requests
    from auditlog.engine import LLMEngine

    torch.set_num_threads(1)
    events: list[Event] = []
    engine = LLMEngine.demo(event_sink=events.append, **engine_options)  # type: ignore[arg-type]
    jobs = demo_requests(num_requests, seed=0)
    for request_id, tenant, principal, prompt, params in jobs:
        params = dataclasses.replace(params, max_tokens=min(params.max_tokens, MAX_TOKENS))
        engine.add_request(request_id, prompt, params, tenant=tenant, principal=principal)
    while engine.has_unfinished():
        engine.step()
    steps = [e for e in events if isinstance(e, BatchStep)]
    return DemoRun(
        events=events,
        request_ids=[j[0] for j in jobs],
        tenants={j[0]: j[1] for j in jobs},
        max_batch=max(len(set(s.request_ids)) for s in steps),
    )


def record(db_url: str, events: list[Event], spool: Path) -> None:
    """Feed ``events`` to a recorder on ``db_url``; closing signs the final checkpoint."""
    with AuditRecorder.open(db_url, origin=ORIGIN, signers=[SIGNER], spool_path=spool) as rec:
        for event in events:
            rec.record(event)


def alter_token(events: list[Event], request_id: str, index: int) -> tuple[list[Event], int, int]:
    """``events`` with generated token ``index`` of ``request_id`` replaced by another id.

    Returns the new events, the original token and the substitute.
    """
    out: list[Event] = []
    seen = 0
    original = substitute = -1
    for event in events:
        if isinstance(event, BatchStep) and original < 0:
            ids = list(event.token_ids)
            for i, rid in enumerate(event.request_ids):
                if rid != request_id:
                    continue
                if seen == index:
                    original = ids[i]
                    substitute = ids[i] = (ids[i] + 1) % 256
                seen += 1
            event = dataclasses.replace(event, token_ids=tuple(ids))
        out.append(event)
    if original < 0:
        raise ValueError(f"request {request_id} has no token {index}")
    return out, original, substitute


def start_of(events: list[Event], request_id: str) -> RequestStarted:
    return next(e for e in events if isinstance(e, RequestStarted) and e.request_id == request_id)


def alter_draft(events: list[Event], request_id: str, step: int) -> list[Event]:
    """``events`` with the last draft proposal of ``request_id``'s speculative step ``step``
    (counted among the steps that proposed drafts for it) replaced by another id."""
    out: list[Event] = []
    seen = 0
    for event in events:
        if isinstance(event, BatchStep) and event.drafts.get(request_id):
            if seen == step:
                proposals = list(event.drafts[request_id])
                proposals[-1] = (proposals[-1] + 1) % 256
                event = dataclasses.replace(
                    event, drafts={**event.drafts, request_id: tuple(proposals)}
                )
            seen += 1
        out.append(event)
    if seen <= step:
        raise ValueError(f"request {request_id} has no speculative step {step}")
    return out
