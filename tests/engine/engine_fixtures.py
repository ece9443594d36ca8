"""Tiny random-weight models for the engine tests, built with transformers (no download)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

TINY_VOCAB = 258  # 256 byte ids + BOS + EOS, as the stand-in tokenizer below


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
        tie_word_embeddings=False,
    )
    base.update(overrides)
    if arch == "llama":
        return LlamaConfig(**base)
    if arch == "qwen2":
        return Qwen2Config(**base)
    raise KeyError(arch)


def save_tiny_model(directory: Path, arch: str, seed: int = 0, **overrides: Any) -> Path:
    """Save a random-weight LlamaForCausalLM / Qwen2ForCausalLM as safetensors + tokenizer.json."""
    from transformers import LlamaForCausalLM, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = tiny_hf_config(arch, **overrides)
    cls = LlamaForCausalLM if arch == "llama" else Qwen2ForCausalLM
    model = cls(cfg)
    if arch == "qwen2":  # HF initialises biases to zero; make them matter
        with torch.no_grad():
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0, 0.5)
    model.save_pretrained(directory, safe_serialization=True)
    # Content is only fingerprinted here; the engine tests pass a tokenizer object directly.
    (directory / "tokenizer.json").write_text(json.dumps({"model": {"type": "byte-standin"}}))
    return directory


class StandInTokenizer:
    """Bytes 0..255 are ids 0..255; 256 is BOS, 257 is EOS (tests only)."""

    bos_id = 256
    eos_id = 257
    vocab_size = TINY_VOCAB

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        from auditlog.errors import InvalidRequestError

        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise InvalidRequestError(f"unknown token id {bad[0]}")
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
