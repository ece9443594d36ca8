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
- ``tiled_attention``: scores and weighted values are GEMMs on tiles of exactly ``QUERY_TILE``
  queries by ``KEY_TILE`` keys; softmax takes the row maximum (exact in any order); the tiles of a
  row (weighted values and the normaliser) are added one after another from key 0. Keys a row may
  not see are exact zeros, and a fully masked trailing tile adds exactly zero, so padding a
  sequence's keys for the batch, or chunking its prefill, changes nothing.

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
    "QUERY_TILE",
    "ROW_TILE",
    "kernels_name",
    "replay_envelope",
    "tiled_attention",
    "tiled_linear",
]

#: Rows per GEMM call of ``tiled_linear``.
ROW_TILE = 16
#: Query rows and keys per GEMM tile of ``tiled_attention``.
QUERY_TILE = 8
KEY_TILE = 16
#: Names the kernels in the replay envelope: a run replays only on the same kernels.
KERNELS = f"auditlog-tiled/1 linear:rows={ROW_TILE} attention:queries={QUERY_TILE},keys={KEY_TILE}"
# Largest product tensor tiled_attention materialises at once (elements); larger batches are
# split by sequence, which changes nothing per row.
_MAX_PRODUCT = 1 << 23


def tiled_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` with every GEMM call shaped [ROW_TILE, in]: x [T, in] -> [T, out]."""
    num_rows = x.shape[0]
    if num_rows == 0:
        return F.linear(x, weight, bias)  # [0, out]
    pad = (-num_rows) % ROW_TILE
    if pad:
        x = torch.cat((x, x.new_zeros((pad, x.shape[1]))))  # [T + pad, in]
    # each tile [ROW_TILE, in] -> [ROW_TILE, out]
    tiles = [F.linear(x[i : i + ROW_TILE], weight, bias) for i in range(0, x.shape[0], ROW_TILE)]
    return torch.cat(tiles)[:num_rows]


def _pad_to(x: torch.Tensor, dim: int, tile: int, value: float | bool = 0) -> torch.Tensor:
    """``x`` zero- (or ``value``-) padded along ``dim`` to a multiple of ``tile``."""
    pad = (-x.shape[dim]) % tile
    if not pad:
        return x
    widths = [0, 0] * (x.dim() - dim - 1) + [0, pad]
    return F.pad(x, widths, value=value)


def tiled_attention(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, scale: float
) -> torch.Tensor:
    """Masked attention with a fixed summation order per query row.

    q: [B, Lq, H, D]; keys, values: [B, Lk, H, D] (kv heads already expanded to H); mask:
    [B, 1, Lq, Lk] bool, True where the query may see the key, and every row MUST see key 0.
    Returns [B, Lq, H, D]. Every GEMM is one [QUERY_TILE, D] x [D, KEY_TILE] score tile or one
    [QUERY_TILE, KEY_TILE] x [KEY_TILE, D + 1] value tile; the tiles of a row are added in key
    order, one after another.
    """
    num_seqs, num_queries, num_heads, head_dim = q.shape
    per_seq = num_heads * (num_queries + QUERY_TILE) * (keys.shape[1] + KEY_TILE) * 4
    group = max(1, _MAX_PRODUCT // per_seq)
    if num_seqs > group:  # sequences are independent: split the batch to bound memory
        return torch.cat(
            [
                tiled_attention(
                    q[i : i + group],
                    keys[i : i + group],
                    values[i : i + group],
                    mask[i : i + group],
                    scale,
                )
                for i in range(0, num_seqs, group)
            ]
        )
    # padded queries are dropped at the end; padded keys are masked, so they add exact zeros
    q = _pad_to(q, 1, QUERY_TILE)
    keys, values = _pad_to(keys, 1, KEY_TILE), _pad_to(values, 1, KEY_TILE)
    mask = _pad_to(_pad_to(mask, 3, KEY_TILE, False), 2, QUERY_TILE, True)
    nq, nk = q.shape[1] // QUERY_TILE, keys.shape[1] // KEY_TILE
    # tiles: q [B, H, nq, 1, QT, D]; k, transposed, [B, H, 1, nk, D, KT]; values + a ones column
    # (the same tiled sum then yields the softmax normaliser) [B, H, 1, nk, KT, D + 1]
    qt = q.transpose(1, 2).reshape(num_seqs, num_heads, nq, 1, QUERY_TILE, head_dim)
    kt = keys.permute(0, 2, 3, 1).reshape(num_seqs, num_heads, head_dim, nk, KEY_TILE)
    kt = kt.permute(0, 1, 3, 2, 4).unsqueeze(2)
    ones = values.new_ones((*values.shape[:3], 1))
    vt = torch.cat((values, ones), dim=-1).transpose(1, 2)
    vt = vt.reshape(num_seqs, num_heads, 1, nk, KEY_TILE, head_dim + 1)
    # mask tiles [B, 1, nq, nk, QT, KT]
    mt = mask.reshape(num_seqs, 1, nq, QUERY_TILE, nk, KEY_TILE).transpose(3, 4)
    scores = torch.matmul(qt, kt).mul_(scale)  # [B, H, nq, nk, QT, KT]
    scores.masked_fill_(~mt, -math.inf)
    row_max = scores.amax(dim=(3, 5), keepdim=True)  # exact in any order
    weights = scores.sub_(row_max).exp_()  # masked: exactly 0
    partial = torch.matmul(weights, vt)  # [B, H, nq, nk, QT, D + 1]
    total = partial[:, :, :, 0].clone()
    for n in range(1, nk):  # key tiles in order, one after another
        total += partial[:, :, :, n]
    out = total[..., :head_dim] / total[..., head_dim:]  # [B, H, nq, QT, D]
    out = out.reshape(num_seqs, num_heads, nq * QUERY_TILE, head_dim).transpose(1, 2)
    return out[:, :num_queries]


#: Version of the replay envelope layout (docs/FORMAT.md section 3.3, ``replay``).
ENVELOPE_VERSION = 1


def kernels_name(batch_invariant: bool) -> str:
    """The kernels in the envelope; the torch version names the GEMM library underneath."""
    if batch_invariant:
        return f"{KERNELS} torch/{torch.__version__}"
    return f"torch/{torch.__version__} library kernels"


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
        "kernels": kernels_name(batch_invariant),
        "device": device.type,
        "speculative_tokens": num_speculative_tokens,
        "max_model_len": max_model_len,
    }
