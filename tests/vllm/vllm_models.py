"""Tiny Llama target and draft for the vLLM tests, made on the spot (no download).

hidden 128 with 4 heads gives head_dim 32, the smallest the CPU attention backend takes. The
tokenizer is byte-level BPE without merges: one token per byte, plus <s> and </s>.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

VOCAB = 259
BOS, EOS, PAD = 256, 257, 258


def save_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=lambda c: ord(c))
    vocab = {c: i for i, c in enumerate(alphabet)} | {"<s>": BOS, "</s>": EOS, "<pad>": PAD}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.save_pretrained(path)


def make_model(path: Path, *, layers: int, seed: int) -> Path:
    """Save a random-weight Llama (and the tokenizer) under ``path``; return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, torch_dtype="float32",
    )  # fmt: skip
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # sharper logits than the default init: less near-ties under bf16
        model.lm_head.weight.mul_(8.0)
    model.save_pretrained(path)
    save_tokenizer(path)
    return path


def make_draft_from(target: Path, path: Path, *, noise: float = 0.5, seed: int = 1) -> Path:
    """A draft that is the target with noise on its last layer's MLP (same embeddings and head):
    it agrees with the target often but not always, so steps show accepted, recovered and bonus
    tokens."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM.from_pretrained(target, dtype=torch.float32)
    weight = model.model.layers[-1].mlp.down_proj.weight
    with torch.no_grad():
        weight.add_(torch.randn_like(weight) * weight.std() * noise)
    model.save_pretrained(path)
    save_tokenizer(path)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
