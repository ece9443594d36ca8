"""Synthetic engine traffic for tests and benchmarks: interleaved, speculative, multi-tenant.

``SyntheticEngine`` produces the same event stream shape as the reference engine (RequestStarted,
one BatchStep per physical step with tokens of several requests interleaved, RequestFinished) and
remembers what every request received, so tests can compare the trail rebuilt from the database with
the engine's truth.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from auditlog.events import (
    BatchStep,
    Event,
    FinishReason,
    ModelRef,
    Provenance,
    RequestFinished,
    RequestStarted,
)

__all__ = ["DRAFT", "TARGET", "SyntheticEngine", "Truth"]

TARGET = ModelRef(name="synth-target", weights_sha256="a" * 64, tokenizer_sha256="b" * 64)
DRAFT = ModelRef(name="synth-draft", weights_sha256="c" * 64, tokenizer_sha256="b" * 64)


@dataclass
class Truth:
    tenant: str
    token_ids: list[int] = field(default_factory=list)
    provenance: list[Provenance] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    reason: FinishReason | None = None


class SyntheticEngine:
    def __init__(
        self, *, seed: int = 0, tenants: int = 3, max_batch: int = 8, prefix: str = "req"
    ) -> None:
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.tenants = [f"tenant-{i}" for i in range(tenants)]
        self.max_batch = max_batch
        self.truth: dict[str, Truth] = {}
        self.remaining: dict[str, int] = {}
        self.step_id = 0
        self.next_id = 0

    def start(self, n_tokens: int | None = None) -> RequestStarted:
        request_id = f"{self.prefix}-{self.next_id:05d}"
        self.next_id += 1
        tenant = self.rng.choice(self.tenants)
        self.truth[request_id] = Truth(tenant=tenant)
        self.remaining[request_id] = n_tokens or self.rng.randint(1, 40)
        prompt = [self.rng.randrange(256) for _ in range(self.rng.randint(1, 20))]
        return RequestStarted(
            request_id=request_id,
            tenant=tenant,
            principal=f"user-{self.rng.randrange(5)}@{tenant}",
            prompt_token_ids=tuple(prompt),
            prompt_text="prompt é ü \n\t\u0001 " + request_id,
            params={"temperature": "0.7", "seed": self.rng.randrange(2**32), "max_tokens": 64},
            target=TARGET,
            draft=DRAFT,
            ts=time.time_ns(),
            engine="synthetic/1",
            client="key-1",
        )

    def step(self) -> BatchStep | None:
        running = [r for r, n in self.remaining.items() if n > 0][: self.max_batch]
        if not running:
            return None
        pieces: list[tuple[str, int, Provenance]] = []
        drafts: dict[str, tuple[int, ...]] = {}
        for request_id in running:
            k = self.rng.randint(0, 4)
            proposals = tuple(self.rng.randrange(256) for _ in range(k))
            accepted = self.rng.randint(0, k)
            emitted: list[tuple[int, Provenance]] = [
                (t, Provenance.DRAFT_ACCEPTED) for t in proposals[:accepted]
            ]
            if k == 0:
                emitted.append((self.rng.randrange(256), Provenance.TARGET))
            elif accepted == k:
                emitted.append((self.rng.randrange(256), Provenance.BONUS))
            else:
                emitted.append((self.rng.randrange(256), Provenance.TARGET_RECOVERED))
            emitted = emitted[: self.remaining[request_id]]
            self.remaining[request_id] -= len(emitted)
            if k:
                drafts[request_id] = proposals
            pieces.extend((request_id, t, p) for t, p in emitted)
        # Physical order is unrelated to requests: shuffle while keeping each request's order.
        order = list(range(len(pieces)))
        self.rng.shuffle(order)
        by_request: dict[str, list[int]] = {}
        for i in range(len(pieces)):
            by_request.setdefault(pieces[i][0], []).append(i)
        slots = {r: iter(idx) for r, idx in by_request.items()}
        flat = [pieces[next(slots[pieces[i][0]])] for i in order]
        for request_id, token, prov in flat:
            truth = self.truth[request_id]
            truth.token_ids.append(token)
            truth.provenance.append(prov)
            truth.steps.append(self.step_id)
        event = BatchStep(
            step_id=self.step_id,
            ts=time.time_ns(),
            token_ids=tuple(t for _, t, _ in flat),
            request_ids=tuple(r for r, _, _ in flat),
            provenance=tuple(p for _, _, p in flat),
            drafts=drafts,
        )
        self.step_id += 1
        return event

    def finish_done(self) -> list[RequestFinished]:
        done = [r for r, n in self.remaining.items() if n == 0]
        events = []
        for request_id in done:
            del self.remaining[request_id]
            n = len(self.truth[request_id].token_ids)
            self.truth[request_id].reason = FinishReason.LENGTH
            events.append(
                RequestFinished(
                    request_id=request_id,
                    reason=FinishReason.LENGTH,
                    n_generated=n,
                    n_delivered=n,
                    ts=time.time_ns(),
                )
            )
        return events

    def run(self, n_requests: int, *, arrivals_per_step: int = 2) -> list[Event]:
        """All events of ``n_requests`` requests arriving over time, interleaved."""
        events: list[Event] = []
        started = 0
        while started < n_requests or self.remaining:
            for _ in range(arrivals_per_step):
                if started < n_requests:
                    events.append(self.start())
                    started += 1
            step = self.step()
            if step is not None:
                events.append(step)
            events.extend(self.finish_done())
        return events
