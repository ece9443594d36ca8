"""Paged KV cache and batched variable-length attention in pure PyTorch.

Every sequence owns a *block table*: the list of cache blocks holding its keys and values, in
order; token ``t`` of a sequence lives at slot ``block_table[t // block_size] * block_size +
t % block_size``. One forward pass handles a chunk of any length per sequence (prefill, one decode
token, k+1 speculative verification positions, draft catch-up): the chunk's keys and values are
written into their slots, then each sequence's keys are gathered through its block table and
attended to with one masked ``scaled_dot_product_attention`` over the padded batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from auditlog.engine.numerics import tiled_attention

__all__ = ["AttentionMetadata", "KVCache", "build_metadata", "paged_attention"]


@dataclass(frozen=True, slots=True)
class KVCache:
    """Per-layer key and value caches, each ``[num_blocks, block_size, num_kv_heads, head_dim]``."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    block_size: int

    @classmethod
    def allocate(
        cls,
        *,
        num_layers: int,
        num_blocks: int,
        block_size: int,
        num_kv_heads: int,
        head_dim: int,
        device: torch.device | str,
        dtype: torch.dtype,
    ) -> KVCache:
        shape = (num_blocks, block_size, num_kv_heads, head_dim)
        keys = tuple(torch.zeros(shape, device=device, dtype=dtype) for _ in range(num_layers))
        values = tuple(torch.zeros(shape, device=device, dtype=dtype) for _ in range(num_layers))
        return cls(keys=keys, values=values, block_size=block_size)


@dataclass(frozen=True, slots=True)
class AttentionMetadata:
    """Index tensors shared by every layer of one forward pass (B sequences, T tokens in all)."""

    positions: torch.Tensor  # [T] absolute position of each token in its sequence
    slot_mapping: torch.Tensor  # [T] cache slot each token's key/value is written to
    block_tables: torch.Tensor  # [B, M] block ids per sequence, padded with 0
    token_batch_idx: torch.Tensor  # [T] which sequence each flattened token belongs to
    token_local_idx: torch.Tensor  # [T] the token's row in its sequence's padded query block
    mask: torch.Tensor  # [B, 1, Lq, Lk] bool: True where query i may attend key j
    max_query_len: int  # Lq
    max_context_len: int  # Lk


def build_metadata(
    *,
    block_tables: Sequence[Sequence[int]],
    start_positions: Sequence[int],
    query_lens: Sequence[int],
    block_size: int,
    device: torch.device | str,
) -> AttentionMetadata:
    """Index tensors for sequences that append ``query_lens[b]`` tokens at ``start_positions[b]``.

    Sequence ``b`` already has ``start_positions[b]`` tokens in its cache; after this pass it has
    ``start_positions[b] + query_lens[b]``, and its block table MUST cover that many tokens.
    """
    num_seqs = len(query_lens)
    max_q = max(query_lens)
    max_blocks = max(len(t) for t in block_tables)
    starts = torch.tensor(start_positions, dtype=torch.long)  # [B]
    qlens = torch.tensor(query_lens, dtype=torch.long)  # [B]
    padded = [list(t) + [0] * (max_blocks - len(t)) for t in block_tables]
    tables = torch.tensor(padded, dtype=torch.long)  # [B, M]
    batch_idx = torch.repeat_interleave(torch.arange(num_seqs), qlens)  # [T]
    offsets = torch.cumsum(qlens, 0) - qlens  # [B] first flattened index of each sequence
    local_idx = torch.arange(int(qlens.sum())) - offsets[batch_idx]  # [T]
    positions = starts[batch_idx] + local_idx  # [T]
    slots = tables[batch_idx, positions // block_size] * block_size + positions % block_size
    context_lens = starts + qlens  # [B] keys visible after this pass's write
    max_k = int(context_lens.max())
    # query_pos: [B, Lq] absolute positions; padding rows take the last real position so that no
    # row is fully masked (a fully masked row would make softmax produce NaN).
    rows = torch.arange(max_q).unsqueeze(0)  # [1, Lq]
    query_pos = starts.unsqueeze(1) + torch.minimum(rows, (qlens - 1).unsqueeze(1))  # [B, Lq]
    keys = torch.arange(max_k).view(1, 1, max_k)  # [1, 1, Lk]
    # causal within the sequence: key j is visible to query at position p iff j <= p (< context)
    mask = (keys <= query_pos.unsqueeze(2)) & (keys < context_lens.view(-1, 1, 1))  # [B, Lq, Lk]
    return AttentionMetadata(
        positions=positions.to(device),
        slot_mapping=slots.to(device),
        block_tables=tables.to(device),
        token_batch_idx=batch_idx.to(device),
        token_local_idx=local_idx.to(device),
        mask=mask.unsqueeze(1).to(device),
        max_query_len=max_q,
        max_context_len=max_k,
    )


def paged_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    meta: AttentionMetadata,
    scale: float,
    *,
    batch_invariant: bool = False,
) -> torch.Tensor:
    """Write ``k``/``v`` into the cache, then attend ``q`` to each sequence's cached keys.

    q: [T, H, D]; k, v: [T, Hkv, D]; k_cache, v_cache: [N, block_size, Hkv, D]. Returns [T, H, D].
    ``batch_invariant`` uses ``numerics.tiled_attention`` (one summation order per row, whatever
    the batch) instead of ``scaled_dot_product_attention``.
    """
    num_kv_heads, head_dim = k.shape[1], k.shape[2]
    k_cache.view(-1, num_kv_heads, head_dim)[meta.slot_mapping] = k
    v_cache.view(-1, num_kv_heads, head_dim)[meta.slot_mapping] = v
    num_seqs = meta.block_tables.shape[0]
    num_heads = q.shape[1]
    # q_pad: [B, Lq, H, D], scattered from the flattened tokens
    q_pad = q.new_zeros((num_seqs, meta.max_query_len, num_heads, head_dim))
    q_pad[meta.token_batch_idx, meta.token_local_idx] = q
    # keys/values gathered through the block tables: [B, M * block_size, Hkv, D] -> [B, Lk, Hkv, D]
    keys = k_cache[meta.block_tables].flatten(1, 2)[:, : meta.max_context_len]
    values = v_cache[meta.block_tables].flatten(1, 2)[:, : meta.max_context_len]
    group = num_heads // num_kv_heads  # grouped-query attention: each kv head serves `group` heads
    if group > 1:
        keys = keys.repeat_interleave(group, dim=2)
        values = values.repeat_interleave(group, dim=2)
    if batch_invariant:
        out_pad = tiled_attention(q_pad, keys, values, meta.mask, scale)  # [B, Lq, H, D]
        return out_pad[meta.token_batch_idx, meta.token_local_idx]  # [T, H, D]
    # SDPA wants [B, H, L, D]; out: [B, H, Lq, D]
    out = F.scaled_dot_product_attention(
        q_pad.transpose(1, 2),
        keys.transpose(1, 2),
        values.transpose(1, 2),
        attn_mask=meta.mask,
        scale=scale,
    )
    return out.transpose(1, 2)[meta.token_batch_idx, meta.token_local_idx]  # [T, H, D]
