"""``LLMEngine``: the engine loop of :mod:`auditlog.engine.engine_core` (its event contract is
documented there), with factories that load a model pair from disk and ``generate``, which runs
prompts to completion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from auditlog.engine.assembly import load_pair
from auditlog.engine.config import EngineConfig
from auditlog.engine.engine_core import ENGINE_NAME, EngineCore, _discard
from auditlog.engine.inputs import Tokenizer
from auditlog.engine.outputs import RequestOutput, collect_outputs
from auditlog.engine.sampler import SamplingParams
from auditlog.events import Event

__all__ = ["DEMO_MODELS_DIR", "ENGINE_NAME", "LLMEngine", "Tokenizer"]

DEMO_MODELS_DIR = Path(__file__).parent / "demo_models"


class LLMEngine(EngineCore):
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

        target, draft, tokenizer = load_pair(target_dir, draft_dir, device=device, dtype=dtype)
        cfg = replace(config or EngineConfig(), num_speculative_tokens=num_speculative_tokens)
        return cls(
            target=target,
            draft=draft,
            tokenizer=tokenizer,
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
        return collect_outputs(self.step, prompt_ids)
