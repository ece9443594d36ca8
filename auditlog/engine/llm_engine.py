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

Request checks live in ``inputs``; the finish and delivered-text rules in ``outputs``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from auditlog.engine.block_manager import BlockManager
from auditlog.engine.config import EngineConfig
from auditlog.engine.executor import StepExecutor
from auditlog.engine.inputs import Tokenizer, read_input
from auditlog.engine.loader import LoadedModel, load_model
from auditlog.engine.model import CausalLM
from auditlog.engine.model_runner import ModelRunner
from auditlog.engine.numerics import replay_envelope
from auditlog.engine.outputs import (
    RequestOutput,
    StepOutput,
    append_tokens,
    final_output,
    running_output,
)
from auditlog.engine.sampler import SamplingParams, make_generator
from auditlog.engine.scheduler import Scheduler
from auditlog.engine.sequence import Sequence as Seq
from auditlog.errors import ConfigurationError, InvalidRequestError
from auditlog.events import (
    BatchStep,
    Event,
    FinishReason,
    Provenance,
    RequestFinished,
    RequestStarted,
)

__all__ = ["DEMO_MODELS_DIR", "ENGINE_NAME", "LLMEngine", "Tokenizer"]

#: Name and version of the engine; the version changes whenever its numerics may (docs/REPLAY.md).
ENGINE_NAME = "auditlog-reference-engine/0.2"
DEMO_MODELS_DIR = Path(__file__).parent / "demo_models"


def _discard(event: Event) -> None:
    """The default event sink."""


_MAX_RECORDABLE = 2**53 - 1  # integers beyond this are not canonical JSON (docs/FORMAT.md)


class LLMEngine:
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
        if tokenizer.vocab_size > target.config.vocab_size:
            raise ConfigurationError(
                f"tokenizer has {tokenizer.vocab_size} ids, target only {target.config.vocab_size}"
            )
        if draft is not None and draft.config.vocab_size < tokenizer.vocab_size:
            raise ConfigurationError(
                f"draft vocabulary too small: expected >= {tokenizer.vocab_size}, "
                f"got {draft.config.vocab_size}"
            )
        self.config = cfg
        self.tokenizer = tokenizer
        self.target, self.draft = target, draft
        self.device = torch.device(device)
        self.event_sink = event_sink
        self.num_speculative_tokens = cfg.num_speculative_tokens if draft is not None else 0
        k = self.num_speculative_tokens
        # a sequence of max_model_len - 1 tokens plus k draft slots MUST fit the whole pool alone,
        # so that preemption always makes progress
        limits = [target.config.max_position_embeddings, cfg.num_kv_blocks * cfg.block_size - k]
        if draft is not None:
            limits.append(draft.config.max_position_embeddings)
        if cfg.max_model_len is not None:
            limits.append(cfg.max_model_len)
        self.max_model_len = min(limits)
        if self.max_model_len < 2:
            raise ConfigurationError(f"KV cache too small: max_model_len {self.max_model_len}")
        self.block_manager = BlockManager(num_blocks=cfg.num_kv_blocks, block_size=cfg.block_size)
        self.scheduler = Scheduler(
            block_manager=self.block_manager,
            max_num_batched_tokens=cfg.max_num_batched_tokens,
            max_num_seqs=cfg.max_num_seqs,
            num_speculative_tokens=k,
        )

        def runner(model: CausalLM) -> ModelRunner:
            return ModelRunner(
                model=model,
                num_blocks=cfg.num_kv_blocks,
                block_size=cfg.block_size,
                device=self.device,
                vocab_limit=tokenizer.vocab_size,
            )

        self.executor = StepExecutor(
            target=runner(target.model),
            draft=runner(draft.model) if draft is not None else None,
            num_speculative_tokens=k,
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

    # ---- factories -------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        target_dir: str | Path,
        draft_dir: str | Path | None = None,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        num_speculative_tokens: int = 4,
        config: EngineConfig | None = None,
        event_sink: Callable[[Event], None] = _discard,
    ) -> LLMEngine:
        """Load a target (and optional draft) model directory; the tokenizer is the target's."""
        from dataclasses import replace

        from auditlog.engine.tokenizer import ByteTokenizer

        target = load_model(target_dir, device=device, dtype=dtype)
        draft = load_model(draft_dir, device=device, dtype=dtype) if draft_dir else None
        cfg = replace(config or EngineConfig(), num_speculative_tokens=num_speculative_tokens)
        return cls(
            target=target,
            draft=draft,
            tokenizer=ByteTokenizer.from_file(target.tokenizer_path),
            config=cfg,
            device=device,
            event_sink=event_sink,
        )

    @classmethod
    def demo(
        cls,
        device: torch.device | str = "cpu",
        *,
        speculative: bool = True,
        num_speculative_tokens: int = 4,
        config: EngineConfig | None = None,
        event_sink: Callable[[Event], None] = _discard,
    ) -> LLMEngine:
        """The bundled demo pair (target + draft) from ``auditlog/engine/demo_models``."""
        return cls.from_pretrained(
            DEMO_MODELS_DIR / "target",
            DEMO_MODELS_DIR / "draft" if speculative else None,
            device=device,
            num_speculative_tokens=num_speculative_tokens,
            config=config,
            event_sink=event_sink,
        )

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

    def generate(
        self,
        prompts: Iterable[str | list[int]],
        params: SamplingParams | Sequence[SamplingParams],
        *,
        tenant: str = "local",
        principal: str = "local",
    ) -> list[RequestOutput]:
        """Run prompts to completion; outputs in prompt order."""
        prompts = list(prompts)
        plist = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
        ids = [f"gen-{self._num_added + i}" for i in range(len(prompts))]
        prompt_ids: dict[str, tuple[int, ...]] = {}
        for rid, prompt, p in zip(ids, prompts, plist, strict=True):
            seq = self._add(rid, prompt, p, tenant=tenant, principal=principal, client="")
            prompt_ids[rid] = seq.prompt_token_ids
        tokens: dict[str, list[int]] = {rid: [] for rid in ids}
        texts: dict[str, list[str]] = {rid: [] for rid in ids}
        ends: dict[str, StepOutput] = {}
        while len(ends) < len(ids):
            for out in self.step():
                if out.request_id in tokens:
                    tokens[out.request_id].extend(out.new_token_ids)
                    texts[out.request_id].append(out.text_delta)
                    if out.finished:
                        ends[out.request_id] = out
        return [
            RequestOutput(
                request_id=rid,
                prompt_token_ids=prompt_ids[rid],
                token_ids=tuple(tokens[rid]),
                text="".join(texts[rid]),
                finish_reason=ends[rid].finish_reason,
                error=ends[rid].error,
            )
            for rid in ids
        ]

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
