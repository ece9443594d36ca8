"""One model with its own paged KV cache: turn per-sequence chunks into one batched forward.

A *chunk* is ``(block_table, start, token_ids)``: the sequence already has ``start`` tokens in
this model's cache and appends ``token_ids`` at positions ``start ..``. Any mix of chunk lengths
runs in one pass (prefill, decode, k + 1 verification positions, draft catch-up).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from auditlog.engine.attention import build_metadata
from auditlog.engine.model import CausalLM

__all__ = ["Chunk", "ModelRunner"]

Chunk = tuple[Sequence[int], int, Sequence[int]]  # (block_table, start, token_ids)


class ModelRunner:
    def __init__(
        self,
        *,
        model: CausalLM,
        num_blocks: int,
        block_size: int,
        device: torch.device | str,
        vocab_limit: int | None = None,
    ) -> None:
        self.model = model
        self.device = torch.device(device)
        self.block_size = block_size
        self.cache = model.allocate_cache(
            num_blocks=num_blocks, block_size=block_size, device=device
        )
        # logits beyond the tokenizer's vocabulary are never sampled (a padded embedding matrix)
        self.vocab_limit = vocab_limit or model.config.vocab_size

    @torch.inference_mode()
    def forward(self, chunks: Sequence[Chunk], logits_indices: Sequence[int]) -> torch.Tensor:
        """Run all chunks in one pass; return logits [N, V] (float32) of the flattened tokens
        at ``logits_indices`` (indices into the concatenation of the chunks' tokens)."""
        meta = build_metadata(
            block_tables=[c[0] for c in chunks],
            start_positions=[c[1] for c in chunks],
            query_lens=[len(c[2]) for c in chunks],
            block_size=self.block_size,
            device=self.device,
        )
        flat = [t for c in chunks for t in c[2]]
        input_ids = torch.tensor(flat, dtype=torch.long, device=self.device)  # [T]
        hidden = self.model(input_ids, self.cache, meta)  # [T, hidden]
        index = torch.tensor(logits_indices, dtype=torch.long, device=self.device)  # [N]
        return self.model.compute_logits(hidden[index])[:, : self.vocab_limit]  # [N, V]
