"""Hugging Face transformers (5.x) -> auditlog events: continuous batching and assisted generation.

The recorder then de-interleaves them exactly as it does our engine's (docs/DESIGN.md section 4).

Continuous batching (``ContinuousBatchingManager``, what ``generate_batch`` runs):
:meth:`HFAuditAdapter.attach` wraps, on that manager instance only, ``add_request`` (->
``RequestStarted``) and the batch processor's ``update_batch``: around each call it notes the
requests of the physical batch and their generated lengths, and after it emits one ``BatchStep``
with the token each request received (batch order, provenance ``target``) and a ``RequestFinished``
for each request the step ended (``length`` at ``max_new_tokens``, ``stop`` at an EOS, which is
generated, not delivered). Hooks used: ``ContinuousBatchingManager._create_batch_processor`` and
``ContinuousBatchProcessor.update_batch`` (private to transformers; checked at attach time). Not
covered: ``cancel_request`` (the chain stays open and is closed ``interrupted`` by the recorder's
recovery), ``num_return_sequences`` > 1 (refused), async batching on accelerators.

Assisted generation (``generate(assistant_model=...)``, batch size 1): :meth:`HFAuditAdapter
.assisted_generate` wraps the model's candidate generator (``_get_candidate_generator``, private)
to see each step's draft proposals, and passes a streamer (public API) that receives each step's
accepted tokens. Provenance per step (batch size 1, C6): the longest prefix equal to the
proposals is ``draft_accepted``; the token after it is ``target_recovered`` when a proposal was
rejected, ``bonus`` when all were accepted, ``target`` when there were no proposals.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from auditlog.errors import ConfigurationError, EngineError
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
from auditlog.integrations.hf_assisted import _StepStreamer, step_provenance

__all__ = ["HFAuditAdapter", "step_provenance"]

_SAMPLING_FIELDS = ("do_sample", "temperature", "top_k", "top_p", "max_new_tokens", "eos_token_id")


class HFAuditAdapter:
    """Emits auditlog events for transformers generation into ``sink`` (``recorder.record``)."""

    def __init__(
        self,
        sink: Callable[[Event], None],
        *,
        target: ModelRef,
        draft: ModelRef | None = None,
        engine: str = "",
    ) -> None:
        import transformers

        self.sink = sink
        self.target, self.draft = target, draft
        self.engine = engine or f"transformers/{transformers.__version__}"
        self._steps = itertools.count(1)
        self._lock = threading.Lock()
        self._identities: dict[str, tuple[str, str, str]] = {}

    def identify(self, request_id: str, *, tenant: str, principal: str, client: str = "") -> None:
        """Identity of a request added later (else the attach-time default is used, C3)."""
        self._identities[request_id] = (tenant, principal, client)

    def _started(
        self, request_id: str, prompt_ids: Sequence[int], params: Mapping[str, Any],
        default: tuple[str, str, str], draft: ModelRef | None,
    ) -> None:  # fmt: skip
        tenant, principal, client = self._identities.pop(request_id, default)
        self.sink(
            RequestStarted(
                request_id=request_id, tenant=tenant, principal=principal,
                prompt_token_ids=tuple(int(t) for t in prompt_ids), prompt_text="",
                params=params, target=self.target, draft=draft, ts=time.time_ns(),
                engine=self.engine, client=client,
            )
        )  # fmt: skip

    # -- continuous batching -------------------------------------------------------------

    def attach(self, manager: Any, *, tenant: str, principal: str, client: str = "") -> None:
        """Record everything ``manager`` generates. MUST be called before ``manager.start()``."""
        if getattr(manager, "num_return_sequences", 1) != 1:
            raise ConfigurationError("num_return_sequences > 1 cannot be recorded exactly")
        if not callable(getattr(manager, "_create_batch_processor", None)):
            raise ConfigurationError("this transformers version has no _create_batch_processor")
        if manager.is_running():
            raise ConfigurationError("attach the adapter before the manager starts")
        default = (tenant, principal, client)
        base = _params(manager.generation_config)
        add_request, create = manager.add_request, manager._create_batch_processor

        def audited_add_request(input_ids: list[int], request_id: str | None = None,
                                max_new_tokens: int | None = None, **kw: Any) -> Any:  # fmt: skip
            if request_id is None:
                with manager._request_lock:
                    request_id = f"req_{manager._request_counter}"
                    manager._request_counter += 1
            limit = (
                manager.generation_config.max_new_tokens
                if max_new_tokens is None
                else max_new_tokens
            )
            params = {**base, "max_new_tokens": limit, "seed": None, "rng": "torch-global"}
            self._started(request_id, input_ids, json_safe(params), default, None)
            return add_request(input_ids, request_id, max_new_tokens, **kw)

        def audited_create() -> Any:
            processor = create()
            if not getattr(processor, "_auditlog_wrapped", False):
                self._wrap_processor(processor)
            return processor

        manager.add_request = audited_add_request
        manager._create_batch_processor = audited_create

    def _wrap_processor(self, processor: Any) -> None:
        io = processor.inputs_and_outputs
        prepare, update = io.prepare_batch_update, processor.update_batch
        seen: list[tuple[Any, int]] = []

        def audited_prepare() -> Any:
            result = prepare()
            seen[:] = [(fs.state, fs.state.generated_len()) for fs in result[0] if fs.has_new_token]
            return result

        def audited_update() -> None:
            update()
            self._emit_cb_step(list(seen))
            seen.clear()

        io.prepare_batch_update = audited_prepare
        processor.update_batch = audited_update
        processor._auditlog_wrapped = True

    def _emit_cb_step(self, seen: list[tuple[Any, int]]) -> None:
        from transformers.generation.continuous_batching.requests import RequestStatus

        token_ids: list[int] = []
        request_ids: list[str] = []
        ended: list[Any] = []
        for state, before in seen:
            new = state.generated_tokens[before:]
            token_ids.extend(int(t) for t in new)
            request_ids.extend([state.request_id] * len(new))
            if state.status in (RequestStatus.FINISHED, RequestStatus.FAILED):
                ended.append(state)
        if token_ids:
            self.sink(
                BatchStep(
                    step_id=next(self._steps), ts=time.time_ns(), token_ids=tuple(token_ids),
                    request_ids=tuple(request_ids),
                    provenance=(Provenance.TARGET,) * len(token_ids),
                )
            )  # fmt: skip
        for state in ended:
            self._finish(state.request_id, state.generated_tokens, state._eos_token_ids,
                         error=state.error or "")  # fmt: skip

    def _finish(self, request_id: str, generated: Sequence[int], eos: Any, *, error: str) -> None:
        n = len(generated)
        if error:
            reason, delivered = FinishReason.ERROR, 0
        elif n and int(generated[-1]) in set(eos or ()):
            reason, delivered = FinishReason.STOP, n - 1  # the EOS is generated, not delivered
        else:
            reason, delivered = FinishReason.LENGTH, n
        self.sink(
            RequestFinished(request_id=request_id, reason=reason, n_generated=n,
                            n_delivered=delivered, ts=time.time_ns(), error=error)
        )  # fmt: skip

    def generate_batch(
        self, model: Any, inputs: list[list[int]], *, tenant: str, principal: str,
        generation_config: Any = None, max_new_tokens: int | None = None, timeout_s: float = 300,
    ) -> dict[str, Any]:  # fmt: skip
        """``model.generate_batch`` with every request recorded; results by request id."""
        manager = model.init_continuous_batching(generation_config=generation_config)
        self.attach(manager, tenant=tenant, principal=principal)
        manager.start()
        results: dict[str, Any] = {}
        try:
            ids = manager.add_requests(inputs=inputs, max_new_tokens=max_new_tokens)
            deadline = time.monotonic() + timeout_s
            while len(results) < len(ids):
                if time.monotonic() > deadline or not manager.is_running():
                    raise EngineError(
                        f"continuous batching stopped with {len(results)}/{len(ids)} done"
                    )
                result = manager.get_result(timeout=1)
                if result is not None and result.is_finished():
                    results[result.request_id] = result
        finally:
            manager.stop(block=True, timeout=30)
        return results

    # -- assisted generation -------------------------------------------------------------

    def assisted_generate(
        self, model: Any, input_ids: Any, *, assistant_model: Any, request_id: str,
        tenant: str, principal: str, client: str = "", **generate_kwargs: Any,
    ) -> Any:  # fmt: skip
        """``model.generate(input_ids, assistant_model=...)`` with every step recorded."""
        if input_ids.shape[0] != 1:
            raise ConfigurationError("assisted generation records batch size 1 only")
        proposals: list[list[int]] = []
        original = model._get_candidate_generator

        def audited_candidate_generator(*args: Any, **kwargs: Any) -> Any:
            generator = original(*args, **kwargs)
            get = generator.get_candidates

            def get_candidates(current: Any, *a: Any, **k: Any) -> Any:
                candidates, logits = get(current, *a, **k)
                proposals.append([int(t) for t in candidates[0, current.shape[1] :].tolist()])
                return candidates, logits

            generator.get_candidates = get_candidates
            return generator

        streamer = _StepStreamer(self, request_id, proposals)
        gen_config = generate_kwargs.get("generation_config") or model.generation_config
        params = {**_params(gen_config), **{k: v for k, v in generate_kwargs.items()
                                             if k in _SAMPLING_FIELDS}}  # fmt: skip
        params |= {"assisted": True, "seed": None, "rng": "torch-global"}
        self._started(request_id, input_ids[0].tolist(), json_safe(params),
                      (tenant, principal, client), self.draft)  # fmt: skip
        model._get_candidate_generator = audited_candidate_generator
        try:
            output = model.generate(
                input_ids, assistant_model=assistant_model, streamer=streamer, **generate_kwargs
            )
        except Exception as exc:
            streamer.fail(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            del model._get_candidate_generator  # back to the class method
        eos = gen_config.eos_token_id
        streamer.finish(eos if isinstance(eos, list) else [] if eos is None else [eos])
        return output


def _params(config: Any) -> dict[str, Any]:
    return {name: getattr(config, name, None) for name in _SAMPLING_FIELDS}
