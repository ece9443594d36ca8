"""Batch-invariant kernels: a row's result never depends on what else is in the batch.

Continuous batching changes the shapes of every forward pass: how many tokens (rows) a linear
layer sees, how far each sequence's key block is padded. Library kernels pick their algorithm by
shape (a matrix-vector path for one row, another blocking for many; a key split that depends on
the padded key length), and a different algorithm sums in a different order. The logits of one
request then move in the last bits with the batch, and at a near-tie the sampled token changes.
Replaying a request alone (``auditlog.replay``) must reproduce it, so the reference engine's
default kernels fix the order of every reduction per row:

- ``tiled_linear``: rows go through the library GEMM in tiles of exactly ``ROW_TILE`` rows (the
  last tile zero-padded), so every call has one shape and each output element is summed over the
  input features in one order, whatever the batch.
- ``tiled_attention``: scores are elementwise products summed over ``head_dim`` (a fixed-length
  reduction); softmax takes the row maximum (exact in any order); the weighted values and the
  normaliser are summed within key tiles of exactly ``KEY_TILE`` keys, then the tiles are added
  one after another from key 0. Keys a row may not see are exact zeros; a fully masked trailing
  tile adds exactly zero, so padding a sequence's keys for the batch changes nothing.

Element-wise ops, RMSNorm (a per-row mean), RoPE and the sampler are per row already.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "ENVELOPE_VERSION",
    "KERNELS",
    "KEY_TILE",
    "ROW_TILE",
    "replay_envelope",
    "tiled_attention",
    "tiled_linear",
]

#: Rows per GEMM call of ``tiled_linear``.
ROW_TILE = 16
#: Keys per partial sum of ``tiled_attention``.
KEY_TILE = 16
#: Names the kernels in the replay envelope: a run replays only on the same kernels.
KERNELS = f"auditlog-tiled/1 linear:rows={ROW_TILE} attention:keys={KEY_TILE}"
# Largest product tensor tiled_attention materialises at once (elements); larger batches are
# split by sequence, which changes nothing per row.
_MAX_PRODUCT = 1 << 23


def tiled_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` with every GEMM call shaped [ROW_TILE, in]: x [T, in] -> [T, out]."""
    num_rows = x.shape[0]
    pad = (-num_rows) % ROW_TILE
    if pad:
        x = torch.cat((x, x.new_zeros((pad, x.shape[1]))))  # [T + pad, in]
    # each tile [ROW_TILE, in] -> [ROW_TILE, out]
    tiles = [F.linear(x[i : i + ROW_TILE], weight, bias) for i in range(0, x.shape[0], ROW_TILE)]
    return torch.cat(tiles)[:num_rows]


def tiled_attention(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, scale: float
) -> torch.Tensor:
    """Masked attention with a fixed summation order per query row.

    q: [B, Lq, H, D]; keys, values: [B, Lk, H, D] (kv heads already expanded to H); mask:
    [B, 1, Lq, Lk] bool, True where the query may see the key, and every row MUST see key 0.
    Returns [B, Lq, H, D].
    """
    num_seqs, num_queries, num_heads, head_dim = q.shape
    group = max(1, _MAX_PRODUCT // max(1, num_heads * num_queries * keys.shape[1] * head_dim))
    if num_seqs > group:  # sequences are independent: split the batch to bound memory
        parts = [
            tiled_attention(
                q[i : i + group],
                keys[i : i + group],
                values[i : i + group],
                mask[i : i + group],
                scale,
            )
            for i in range(0, num_seqs, group)
        ]
        return torch.cat(parts)
    pad = (-keys.shape[1]) % KEY_TILE
    if pad:  # padded keys are masked: they contribute exact zeros
        keys = F.pad(keys, (0, 0, 0, 0, 0, pad))
        values = F.pad(values, (0, 0, 0, 0, 0, pad))
        mask = F.pad(mask, (0, pad), value=False)
    num_keys = keys.shape[1]
    num_tiles = num_keys // KEY_TILE
    qh = q.transpose(1, 2)  # [B, H, Lq, D]
    kh = keys.transpose(1, 2)  # [B, H, Lk, D]
    # scores[b, h, i, j] = scale * sum_d q[b, h, i, d] * k[b, h, j, d]: a length-D reduction
    scores = (qh.unsqueeze(3) * kh.unsqueeze(2)).sum(-1) * scale  # [B, H, Lq, Lk]
    scores = scores.masked_fill(~mask, -math.inf)
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))  # [B, H, Lq, Lk]; masked: 0
    # values extended by a column of ones: the same tiled sum yields the softmax normaliser
    ones = values.new_ones((num_seqs, num_keys, num_heads, 1))
    vext = torch.cat((values, ones), dim=-1).transpose(1, 2)  # [B, H, Lk, D + 1]
    vt = vext.reshape(num_seqs, num_heads, num_tiles, KEY_TILE, head_dim + 1).transpose(3, 4)
    wt = weights.reshape(num_seqs, num_heads, num_queries, num_tiles, 1, KEY_TILE)
    # partial[b, h, i, n, :] = sum over the KEY_TILE keys of tile n: [B, H, Lq, N, D + 1]
    partial = (wt * vt.unsqueeze(2)).sum(-1)
    total = partial[:, :, :, 0]
    for n in range(1, num_tiles):  # tiles in key order, one after another
        total = total + partial[:, :, :, n]
    out = total[..., :head_dim] / total[..., head_dim:]  # [B, H, Lq, D]
    return out.transpose(1, 2)


#: Version of the replay envelope layout (docs/FORMAT.md section 3.3, ``replay``).
ENVELOPE_VERSION = 1


def replay_envelope(
    *,
    engine: str,
    dtype: torch.dtype,
    batch_invariant: bool,
    device: torch.device,
    num_speculative_tokens: int,
    max_model_len: int,
) -> dict[str, Any]:
    """The numerics a request ran with, recorded in its ``request.start`` (docs/REPLAY.md).

    A replay is meaningful only on the same engine version, dtype, kernels and device type, and
    only when ``batch_invariant`` is true: otherwise the other requests of the batch may have
    changed this one's tokens.
    """
    return {
        "v": ENVELOPE_VERSION,
        "engine": engine,
        "dtype": str(dtype).removeprefix("torch."),
        "batch_invariant": batch_invariant,
        "kernels": KERNELS if batch_invariant else f"torch/{torch.__version__} library kernels",
        "device": device.type,
        "speculative_tokens": num_speculative_tokens,
        "max_model_len": max_model_len,
    }
