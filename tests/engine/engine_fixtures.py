"""Tiny random-weight models for the engine tests, built with transformers (no download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from auditlog.engine.tokenizer import ByteTokenizer

TINY_VOCAB = 259  # the byte-level tokenizer: 256 bytes + <bos> <eos> <pad>


def tiny_hf_config(arch: str, **overrides: Any) -> Any:
    """A transformers config for a tiny Llama or Qwen2 (GQA: 4 query heads, 2 KV heads)."""
    from transformers import LlamaConfig, Qwen2Config

    base: dict[str, Any] = dict(
        vocab_size=TINY_VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rope_theta=5000.0,
        rms_norm_eps=1e-5,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
        tie_word_embeddings=False,
    )
    base.update(overrides)
    if arch == "llama":
        return LlamaConfig(**base)
    if arch == "qwen2":
        return Qwen2Config(**base)
    raise KeyError(arch)


def save_tiny_model(
    directory: Path, arch: str, seed: int = 0, noise: float = 0.0, **overrides: Any
) -> Path:
    """Save a random-weight LlamaForCausalLM / Qwen2ForCausalLM as safetensors + tokenizer.json.

    ``noise`` > 0 perturbs every weight: with the same seed this makes a draft that agrees with
    the target often but not always.
    """
    from transformers import LlamaForCausalLM, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = tiny_hf_config(arch, **overrides)
    cls = LlamaForCausalLM if arch == "llama" else Qwen2ForCausalLM
    model = cls(cfg)
    if arch == "qwen2":  # HF initialises biases to zero; make them matter
        with torch.no_grad():
            for layer in model.model.layers:
                for proj in (
                    layer.self_attn.q_proj,
                    layer.self_attn.k_proj,
                    layer.self_attn.v_proj,
                ):
                    proj.bias.normal_(0, 0.5)
    if noise:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn(param.shape, generator=gen) * noise)
    model.save_pretrained(directory, safe_serialization=True)
    ByteTokenizer.byte_level().save(directory / "tokenizer.json")
    return directory
