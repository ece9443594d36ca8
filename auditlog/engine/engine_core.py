"""The engine loop: requests in, batched (optionally speculative) steps, audit events out.

Events go to ``event_sink`` synchronously, in this order per request: ``RequestStarted`` when the
request is added, then its tokens in the ``BatchStep`` of each step that produced any, then
``RequestFinished`` after the ``BatchStep`` of the step that ended it. Every token a request
receives appears in exactly one ``BatchStep``, tagged with the request id and its provenance (C6).

Invalid requests (prompt too long or empty, unknown token id, bad sampling parameters) do not
raise: the request is recorded (``RequestStarted``) and ends at once with reason ``error`` and a
message in ``RequestFinished.error`` and in the next ``step()``'s output (C1); the engine keeps
serving the others. Reusing the id of an active request is a caller bug and raises
``InvalidRequestError``; the engine keeps no state for finished requests.

Request checks live in ``inputs``; the finish and delivered-text rules in ``outputs``; building
the engine's parts from a model pair (and loading one) in ``assembly``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from auditlog.engine.assembly import build_executor, check_vocabularies, usable_model_len
from auditlog.engine.block_manager import BlockManager
from auditlog.engine.config import EngineConfig
from auditlog.engine.inputs import Tokenizer, read_input
from auditlog.engine.loader import LoadedModel
from auditlog.engine.numerics import replay_envelope
from auditlog.engine.outputs import StepOutput, append_tokens, final_output, running_output
from auditlog.engine.sampler import SamplingParams, make_generator
from auditlog.engine.scheduler import Scheduler
from auditlog.engine.sequence import Sequence as Seq
from auditlog.errors import InvalidRequestError
from auditlog.events import (
    BatchStep,
    Event,
    FinishReason,
    Provenance,
    RequestFinished,
    RequestStarted,
)

__all__ = ["ENGINE_NAME", "EngineCore"]

#: Name and version of the engine; the version changes whenever its numerics may (docs/REPLAY.md).
ENGINE_NAME = "auditlog-reference-engine/0.2"


def _discard(event: Event) -> None:
    """The default event sink."""


_MAX_RECORDABLE = 2**53 - 1  # integers beyond this are not canonical JSON (docs/FORMAT.md)


class EngineCore:
    """The engine core (module doc); :class:`~auditlog.engine.llm_engine.LLMEngine` adds loading
    models from disk and running prompts to completion."""

    def __init__(
        self,
        *,
        target: LoadedModel,
        tokenizer: Tokenizer,
        draft: LoadedModel | None = None,
        config: EngineConfig | None = None,
        device: torch.device | str = "cpu",
        event_sink: Callable[[Event], None] = _discard,
    ) -> None:
        cfg = config or EngineConfig()
        cfg.validate()
        check_vocabularies(tokenizer, target, draft)
        self.config = cfg
        self.tokenizer = tokenizer
        self.target, self.draft = target, draft
        self.device = torch.device(device)
        self.event_sink = event_sink
        self.num_speculative_tokens = cfg.num_speculative_tokens if draft is not None else 0
        k = self.num_speculative_tokens
        self.max_model_len = usable_model_len(target, draft, cfg, k)
        self.block_manager = BlockManager(num_blocks=cfg.num_kv_blocks, block_size=cfg.block_size)
        self.scheduler = Scheduler(
            block_manager=self.block_manager,
            max_num_batched_tokens=cfg.max_num_batched_tokens,
            max_num_seqs=cfg.max_num_seqs,
            num_speculative_tokens=k,
        )
        self.executor = build_executor(
            target, draft, cfg, device=self.device, vocab_limit=tokenizer.vocab_size, k=k
        )
        self.engine_info = f"{ENGINE_NAME} speculative_tokens={k}"
        for loaded in (target, draft):
            if loaded is not None:
                loaded.model.set_batch_invariant(cfg.batch_invariant)
        #: recorded in every request.start: what a replay must run with (docs/REPLAY.md)
        self.replay_envelope = replay_envelope(
            engine=ENGINE_NAME,
            dtype=target.model.lm_head.weight.dtype,
            batch_invariant=cfg.batch_invariant,
            device=self.device,
            num_speculative_tokens=k,
            max_model_len=self.max_model_len,
        )
        self._sequences: dict[str, Seq] = {}
        self._pending: list[StepOutput] = []
        self._num_added = 0
        self.step_id = 0
        self.num_target_passes = 0
        self.num_preemptions = 0

    # ---- requests --------------------------------------------------------------------------

    def add_request(
        self,
        request_id: str,
        prompt: str | list[int],
        params: SamplingParams,
        *,
        tenant: str,
        principal: str,
        client: str = "",
    ) -> None:
        """Queue a request. A text prompt is encoded as ``[bos] + encode(text)``; a list of ids
        is used as given. Invalid input ends the request with reason ``error`` (module doc)."""
        self._add(request_id, prompt, params, tenant=tenant, principal=principal, client=client)

    def _add(
        self,
        request_id: str,
        prompt: str | list[int],
        params: SamplingParams,
        *,
        tenant: str,
        principal: str,
        client: str,
    ) -> Seq:
        if request_id in self._sequences:
            raise InvalidRequestError(f"duplicate request id {request_id!r} (still active)")
        read = read_input(prompt, params, self.tokenizer, max_model_len=self.max_model_len)
        error = read.error
        self._emit(
            RequestStarted(
                request_id=request_id,
                tenant=tenant,
                principal=principal,
                # An id that is not a recordable integer (the request fails on it anyway; the
                # error names it) is recorded as -1 rather than refused by the recorder.
                prompt_token_ids=tuple(
                    i if type(i) is int and -_MAX_RECORDABLE <= i <= _MAX_RECORDABLE else -1
                    for i in read.prompt_token_ids
                ),
                prompt_text=read.prompt_text,
                params=read.params_record,
                target=self.target.ref,
                draft=self.draft.ref if self.draft is not None else None,
                ts=time.time_ns(),
                engine=self.engine_info,
                client=client,
                replay=self.replay_envelope,
            )
        )
        seq = Seq(
            request_id=request_id,
            arrival=self._num_added,
            prompt_token_ids=read.prompt_token_ids,
            params=params,
            generator=make_generator(params.seed if not error else 0, self.device),
        )
        self._num_added += 1
        self._sequences[request_id] = seq  # active requests only; _finish removes it
        if error:
            self._pending.append(self._finish(seq, FinishReason.ERROR, error=error))
        else:
            self.scheduler.add(seq)
        return seq

    def abort(self, request_id: str) -> bool:
        """End a queued or running request with reason ``abort``; False if it is not active."""
        seq = self._sequences.get(request_id)
        if seq is None or seq.is_finished:
            return False
        self._pending.append(self._finish(seq, FinishReason.ABORT))
        return True

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished() or bool(self._pending)

    # ---- the step --------------------------------------------------------------------------

    def step(self) -> list[StepOutput]:
        """Schedule, run k draft passes (when speculating) and one target pass, emit events.

        MUST be called from one thread only, together with ``add_request`` and ``abort``.
        """
        outputs, self._pending = self._pending, []
        plan = self.scheduler.schedule()
        self.num_preemptions += len(plan.preempted)
        if not plan.scheduled:
            return outputs
        spec = [s.seq for s in plan.scheduled if s.is_speculative]
        drafts: dict[str, tuple[int, ...]] = {}
        proposal = None
        if spec:
            proposal = self.executor.propose(spec)
            rows = proposal[0].tolist()
            drafts = {seq.request_id: tuple(row) for seq, row in zip(spec, rows, strict=True)}
        results = self.executor.run_target(plan.scheduled, spec, proposal)
        self.step_id += 1
        self.num_target_passes += 1
        token_ids: list[int] = []
        request_ids: list[str] = []
        provenance: list[Provenance] = []
        received: list[tuple[Seq, list[int], list[Provenance]]] = []
        eos_id, decode = self.tokenizer.eos_id, self.tokenizer.decode
        for seq, tokens, provs in results:
            n = append_tokens(
                seq, tokens, eos_id=eos_id, max_model_len=self.max_model_len, decode=decode
            )
            token_ids.extend(tokens[:n])
            request_ids.extend([seq.request_id] * n)
            provenance.extend(provs[:n])
            received.append((seq, tokens[:n], provs[:n]))
        self._emit(
            BatchStep(
                step_id=self.step_id,
                ts=time.time_ns(),
                token_ids=tuple(token_ids),
                request_ids=tuple(request_ids),
                provenance=tuple(provenance),
                drafts=drafts,
                num_target_passes=1,
            )
        )
        for seq, tokens, provs in received:
            if seq.finish_reason is not None:
                outputs.append(self._finish(seq, seq.finish_reason, tokens, provs))
            elif tokens:
                outputs.append(running_output(seq, tokens, provs, decode))
        return outputs

    def _finish(
        self,
        seq: Seq,
        reason: FinishReason,
        tokens: Sequence[int] = (),
        provs: Sequence[Provenance] = (),
        *,
        error: str = "",
    ) -> StepOutput:
        """End ``seq``: free its blocks, settle delivered text and counts, emit RequestFinished."""
        self.scheduler.remove(seq)
        self._sequences.pop(seq.request_id, None)
        seq.finish_reason, seq.error = reason, error
        output, n_delivered = final_output(seq, tokens, provs, self.tokenizer.decode)
        self._emit(
            RequestFinished(
                request_id=seq.request_id,
                reason=reason,
                n_generated=seq.num_generated,
                n_delivered=n_delivered,
                ts=time.time_ns(),
                error=error,
            )
        )
        return output

    def _emit(self, event: Event) -> None:
        self.event_sink(event)
