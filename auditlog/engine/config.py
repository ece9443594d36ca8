"""Model and engine configuration.

``ModelConfig`` is the subset of a Hugging Face ``config.json`` that a Llama-architecture decoder
needs (Llama and Qwen2; Qwen2 is Llama with biases on the q/k/v projections). ``EngineConfig`` holds
the serving knobs: KV block size and count, the per-step token budget, the speculative depth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auditlog.errors import ConfigurationError

__all__ = ["SUPPORTED_ARCHITECTURES", "EngineConfig", "ModelConfig"]

# HF architecture name -> whether its q/k/v projections carry a bias.
SUPPORTED_ARCHITECTURES: Mapping[str, bool] = {
    "LlamaForCausalLM": False,
    "Qwen2ForCausalLM": True,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """Shapes and constants of a Llama-architecture decoder."""

    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    attention_bias: bool
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    @classmethod
    def from_hf(cls, raw: Mapping[str, Any]) -> ModelConfig:
        """Read a Hugging Face ``config.json``; raise ``ConfigurationError`` if unsupported."""
        architectures = raw.get("architectures") or []
        arch = str(architectures[0]) if architectures else ""
        if arch not in SUPPORTED_ARCHITECTURES:
            raise ConfigurationError(
                f"unsupported architecture: expected one of {sorted(SUPPORTED_ARCHITECTURES)}, "
                f"got {architectures!r}"
            )
        # transformers < 5 writes rope_theta/rope_scaling; >= 5 writes rope_parameters
        rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type != "default":
            raise ConfigurationError(f"unsupported RoPE scaling: expected default, got {rope!r}")
        rope_theta = rope.get("rope_theta", raw.get("rope_theta", 10000.0))
        if raw.get("hidden_act", "silu") != "silu":
            raise ConfigurationError(
                f"unsupported hidden_act: expected silu, got {raw['hidden_act']!r}"
            )
        if raw.get("use_sliding_window"):
            raise ConfigurationError("unsupported: sliding-window attention")
        try:
            hidden = int(raw["hidden_size"])
            num_heads = int(raw["num_attention_heads"])
            eos = raw.get("eos_token_id")
            if isinstance(eos, list):
                eos = eos[0] if eos else None
            cfg = cls(
                architecture=arch,
                vocab_size=int(raw["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(raw["intermediate_size"]),
                num_hidden_layers=int(raw["num_hidden_layers"]),
                num_attention_heads=num_heads,
                num_key_value_heads=int(raw.get("num_key_value_heads") or num_heads),
                head_dim=int(raw.get("head_dim") or hidden // num_heads),
                rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
                rope_theta=float(rope_theta),
                max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
                tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
                attention_bias=SUPPORTED_ARCHITECTURES[arch] or bool(raw.get("attention_bias")),
                bos_token_id=raw.get("bos_token_id"),
                eos_token_id=eos,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad config.json: {exc!r}") from exc
        if cfg.num_attention_heads % cfg.num_key_value_heads:
            raise ConfigurationError(
                "num_attention_heads must be a multiple of num_key_value_heads: "
                f"got {cfg.num_attention_heads} and {cfg.num_key_value_heads}"
            )
        return cfg


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Serving knobs of ``LLMEngine``.

    ``num_kv_blocks`` blocks of ``block_size`` tokens are shared by all sequences; the target and
    the draft each keep their own cache tensors addressed by the same block tables. Each step
    schedules at most ``max_num_batched_tokens`` target tokens over at most ``max_num_seqs``
    sequences. ``batch_invariant`` (the default) runs the kernels of ``numerics``, so that a
    request's tokens do not depend on the rest of the batch and it can be replayed alone.
    """

    block_size: int = 16
    num_kv_blocks: int = 512
    max_num_batched_tokens: int = 2048
    max_num_seqs: int = 64
    num_speculative_tokens: int = 4
    max_model_len: int | None = None  # None: the target's max_position_embeddings
    batch_invariant: bool = True

    def validate(self) -> None:
        """Raise ``ConfigurationError`` on values the engine cannot run with."""
        checks = {
            "block_size": self.block_size,
            "num_kv_blocks": self.num_kv_blocks,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "max_num_seqs": self.max_num_seqs,
        }
        for name, value in checks.items():
            if value < 1:
                raise ConfigurationError(f"{name} must be >= 1, got {value}")
        if self.num_speculative_tokens < 0:
            raise ConfigurationError(
                f"num_speculative_tokens must be >= 0, got {self.num_speculative_tokens}"
            )
        if self.max_num_batched_tokens < self.num_speculative_tokens + 1:
            raise ConfigurationError(
                "max_num_batched_tokens must hold one verification chunk: expected >= "
                f"{self.num_speculative_tokens + 1}, got {self.max_num_batched_tokens}"
            )
