"""Building an engine from its parts: checking a model pair against the tokenizer and the KV
cache, the model runners and step executor, and loading a model pair from disk."""

from __future__ import annotations

from pathlib import Path

import torch

from auditlog.engine.config import EngineConfig
from auditlog.engine.executor import StepExecutor
from auditlog.engine.inputs import Tokenizer
from auditlog.engine.loader import LoadedModel, load_model
from auditlog.engine.model import CausalLM
from auditlog.engine.model_runner import ModelRunner
from auditlog.errors import ConfigurationError

__all__ = ["build_executor", "check_vocabularies", "load_pair", "usable_model_len"]


def check_vocabularies(
    tokenizer: Tokenizer, target: LoadedModel, draft: LoadedModel | None
) -> None:
    """Raise ConfigurationError unless both models cover every id of the tokenizer."""
    if tokenizer.vocab_size > target.config.vocab_size:
        raise ConfigurationError(
            f"tokenizer has {tokenizer.vocab_size} ids, target only {target.config.vocab_size}"
        )
    if draft is not None and draft.config.vocab_size < tokenizer.vocab_size:
        raise ConfigurationError(
            f"draft vocabulary too small: expected >= {tokenizer.vocab_size}, "
            f"got {draft.config.vocab_size}"
        )


def usable_model_len(
    target: LoadedModel, draft: LoadedModel | None, cfg: EngineConfig, k: int
) -> int:
    """The longest sequence the engine serves with ``k`` speculative tokens."""
    # a sequence of max_model_len - 1 tokens plus k draft slots MUST fit the whole pool alone,
    # so that preemption always makes progress
    limits = [target.config.max_position_embeddings, cfg.num_kv_blocks * cfg.block_size - k]
    if draft is not None:
        limits.append(draft.config.max_position_embeddings)
    if cfg.max_model_len is not None:
        limits.append(cfg.max_model_len)
    max_model_len = min(limits)
    if max_model_len < 2:
        raise ConfigurationError(f"KV cache too small: max_model_len {max_model_len}")
    return max_model_len


def build_executor(
    target: LoadedModel,
    draft: LoadedModel | None,
    cfg: EngineConfig,
    *,
    device: torch.device,
    vocab_limit: int,
    k: int,
) -> StepExecutor:
    """The step executor over one model runner (own paged KV cache) per model."""

    def runner(model: CausalLM) -> ModelRunner:
        return ModelRunner(
            model=model,
            num_blocks=cfg.num_kv_blocks,
            block_size=cfg.block_size,
            device=device,
            vocab_limit=vocab_limit,
        )

    return StepExecutor(
        target=runner(target.model),
        draft=runner(draft.model) if draft is not None else None,
        num_speculative_tokens=k,
    )


def load_pair(
    target_dir: str | Path,
    draft_dir: str | Path | None,
    *,
    device: torch.device | str,
    dtype: torch.dtype,
) -> tuple[LoadedModel, LoadedModel | None, Tokenizer]:
    """Load a target (and optional draft) model directory; the tokenizer is the target's."""
    from auditlog.engine.tokenizer import ByteTokenizer

    target = load_model(target_dir, device=device, dtype=dtype)
    draft = load_model(draft_dir, device=device, dtype=dtype) if draft_dir else None
    return target, draft, ByteTokenizer.from_file(target.tokenizer_path)
