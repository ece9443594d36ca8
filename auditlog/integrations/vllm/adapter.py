"""vLLM engine objects -> auditlog events (the frontend side of the plugin).

One :class:`VllmAuditAdapter` per process turns what ``OutputProcessor`` sees into events:

- ``add_request(EngineCoreRequest)`` -> ``RequestStarted``: prompt token ids, the sampling
  parameters (floats as decimal strings, C5; ``seed`` null means vLLM's own generator), the
  target and draft ``ModelRef`` (C4), ``k``, and the HTTP binding (tenant, principal, client,
  ``x-request-id``) when the request came through the middleware (C3).
- each ``process_outputs`` call -> one ``BatchStep``: every request's new tokens as the caller
  receives them (after vLLM trims tokens past a stop string), in batch order. Provenance from the
  step's acceptance counts (``acceptance`` module): ``draft_accepted`` for the accepted drafts,
  then ``target_recovered`` (a rejection) or ``bonus`` (all drafts accepted); ``target`` for a
  step without a verification (prefill, or no speculative decoding).
- a request that leaves ``OutputProcessor`` -> ``RequestFinished``.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from auditlog.errors import EngineError
from auditlog.events import (
    BatchStep,
    Event,
    FinishReason,
    ModelRef,
    Provenance,
    RequestFinished,
    RequestStarted,
)
from auditlog.gateway.openai_wire import json_safe

from .acceptance import StepAcceptance, step_provenance

__all__ = ["HttpBinding", "VllmAuditAdapter", "bind_http"]

# SamplingParams fields recorded (C5); everything that changes which token is chosen.
SAMPLING_FIELDS = (
    "n", "temperature", "top_p", "top_k", "min_p", "seed", "max_tokens", "min_tokens",
    "presence_penalty", "frequency_penalty", "repetition_penalty", "stop", "stop_token_ids",
    "ignore_eos", "logprobs", "prompt_logprobs", "skip_special_tokens", "logit_bias",
    "allowed_token_ids", "bad_words", "include_stop_str_in_output",
)  # fmt: skip

_KEEP_ENDED = 65_536
_FINISH = {0: FinishReason.STOP, 1: FinishReason.LENGTH, 2: FinishReason.ABORT,
           3: FinishReason.ERROR, 4: FinishReason.STOP}  # fmt: skip  # 4: repetition


@dataclass(slots=True)
class HttpBinding:
    """Who sent the HTTP request whose handler adds the vLLM requests (set by the middleware)."""

    tenant: str
    principal: str
    client: str = ""
    x_request_id: str = ""
    request_ids: list[str] = field(default_factory=list)  # vLLM ids added under this binding


_binding: contextvars.ContextVar[HttpBinding | None] = contextvars.ContextVar(
    "auditlog_vllm_binding", default=None
)


def bind_http(binding: HttpBinding) -> contextvars.Token[HttpBinding | None]:
    """Bind the current task (the HTTP handler) to ``binding``; vLLM requests added inside it
    carry its identity."""
    return _binding.set(binding)


@dataclass(slots=True)
class _Live:
    num_tokens: int = 0
    num_verify_steps: int = 0
    ended: bool = False


class VllmAuditAdapter:
    """Emits the events of one vLLM frontend process into ``sink`` (``recorder.record``)."""

    def __init__(
        self,
        sink: Callable[[Event], None],
        *,
        target: ModelRef,
        draft: ModelRef | None,
        num_spec_tokens: int,
        engine: str,
        default_tenant: str = "local",
        default_principal: str = "vllm",
    ) -> None:
        self.sink = sink
        self.target, self.draft, self.num_spec_tokens = target, draft, num_spec_tokens
        self.engine = engine
        self.default_identity = (default_tenant, default_principal)
        self._steps = itertools.count(1)
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self._ended: deque[str] = deque()

    def recorded_tokens(self, request_id: str) -> int:
        """Tokens of ``request_id`` handed to the recorder so far."""
        live = self._live.get(request_id)
        return live.num_tokens if live else 0

    def has_ended(self, request_id: str) -> bool:
        live = self._live.get(request_id)
        return bool(live and live.ended)

    def started(self, request: Any, prompt: str | None) -> None:
        sp = request.sampling_params
        if sp is None:
            return  # pooling request: no generated tokens to record
        if request.prompt_token_ids is None:
            raise EngineError(
                "auditlog: a vLLM request without prompt token ids cannot be recorded"
            )
        binding = _binding.get()
        params: dict[str, Any] = {name: json_safe(_plain(getattr(sp, name, None)))
                                  for name in SAMPLING_FIELDS}  # fmt: skip
        params |= {
            "rng": "vllm-seeded" if sp.seed is not None else "vllm-global",
            "num_speculative_tokens": self.num_spec_tokens,
            "external_request_id": request.external_req_id or request.request_id,
        }
        if binding is not None:
            binding.request_ids.append(request.request_id)
            if binding.x_request_id:
                params["x_request_id"] = binding.x_request_id
            tenant, principal, client = binding.tenant, binding.principal, binding.client
        else:
            (tenant, principal), client = self.default_identity, ""
        with self._lock:
            self._live[request.request_id] = _Live()
        self.sink(
            RequestStarted(
                request_id=request.request_id, tenant=tenant, principal=principal,
                prompt_token_ids=tuple(int(t) for t in request.prompt_token_ids),
                prompt_text=prompt or "", params=params, target=self.target, draft=self.draft,
                ts=time.time_ns(), engine=self.engine, client=client,
            )
        )  # fmt: skip

    def step(self, outputs: Iterable[Any], finished: Mapping[str, FinishReason]) -> None:
        """One ``process_outputs`` call: ``outputs`` as trimmed by vLLM, ``finished`` the
        requests it ended (by vLLM id)."""
        token_ids: list[int] = []
        request_ids: list[str] = []
        provenance: list[Provenance] = []
        for out in outputs:
            live = self._live.get(out.request_id)
            if live is None or live.ended or not out.new_token_ids:
                continue
            new = [int(t) for t in out.new_token_ids]
            acceptance = StepAcceptance.of(out, live.num_verify_steps)
            live.num_verify_steps += acceptance is not None
            provenance.extend(step_provenance(len(new), acceptance))
            token_ids.extend(new)
            request_ids.extend([out.request_id] * len(new))
            live.num_tokens += len(new)
        if token_ids:
            self.sink(
                BatchStep(
                    step_id=next(self._steps), ts=time.time_ns(), token_ids=tuple(token_ids),
                    request_ids=tuple(request_ids), provenance=tuple(provenance),
                )
            )  # fmt: skip
        for request_id, reason in finished.items():
            self.finished(request_id, reason)

    def finished(self, request_id: str, reason: FinishReason, error: str = "") -> None:
        with self._lock:
            live = self._live.get(request_id)
            if live is None or live.ended:
                return
            live.ended = True
            # Ended requests stay answerable (recorded_tokens, has_ended) for a while.
            self._ended.append(request_id)
            if len(self._ended) > _KEEP_ENDED:
                self._live.pop(self._ended.popleft(), None)
        self.sink(
            RequestFinished(
                request_id=request_id, reason=reason, n_generated=live.num_tokens,
                n_delivered=live.num_tokens, ts=time.time_ns(), error=error,
            )
        )  # fmt: skip


def finish_reason(value: Any) -> FinishReason:
    """auditlog's reason for a vLLM ``FinishReason`` (``repetition`` counts as ``stop``)."""
    return _FINISH[int(value)]


def _plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
