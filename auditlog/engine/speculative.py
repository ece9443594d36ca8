"""Speculative decoding: verify a draft model's proposals against the target by rejection sampling.

The rule (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding",
Algorithm 1; Chen et al. 2023): with draft distribution q and target distribution p at position i,
accept draft token x with probability min(1, p(x) / q(x)); at the first rejection emit a token from
norm(max(0, p - q)) and stop; if every draft was accepted emit a bonus token from the target's
distribution after the last draft. Every emitted token is then distributed exactly as the target
alone would have sampled it. With one-hot (greedy) p and q this reduces to "accept while the draft
token equals the target's argmax, then emit the target's argmax".

Replay rule (C5): row b consumes exactly ``num_drafts[b] + 1`` uniforms from its own generator, in
one call: one per acceptance test, then one for the recovered or bonus token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from auditlog.engine.sampler import sample_from_probs
from auditlog.errors import EngineError
from auditlog.events import Provenance

__all__ = ["verify_drafts"]


def _accept_mask(target_p: torch.Tensor, draft_q: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Accept draft token x with probability min(1, p(x) / q(x)): accept iff u * q(x) < p(x).

    target_p, draft_q, u: [B, k] (p and q at the drafted tokens) -> BoolTensor [B, k].
    """
    # p >= q: always accept (u < 1, so u * q < q <= p); p = 0: never accept.
    return u * draft_q < target_p


def _recovery_probs(target_p: torch.Tensor, draft_q: torch.Tensor) -> torch.Tensor:
    """Residual distribution after a rejection: max(0, p - q), unnormalised. [B, V] -> [B, V]."""
    residual = (target_p - draft_q).clamp_min(0.0)
    # a rejection implies p(x) < q(x), so some p(y) > q(y) and the residual has mass; float
    # rounding aside. Fall back to p for a row whose residual vanished.
    empty = residual.sum(dim=-1, keepdim=True) <= 0
    return torch.where(empty, target_p, residual)


def verify_drafts(
    draft_tokens: torch.Tensor,
    draft_probs: torch.Tensor,
    target_probs: torch.Tensor,
    generators: Sequence[torch.Generator],
    num_drafts: torch.Tensor | None = None,
) -> list[tuple[list[int], list[Provenance]]]:
    """Accept or reject each row's drafts; return per row the emitted tokens and their provenance.

    draft_tokens: LongTensor [B, k]; draft_probs (q): [B, k, V]; target_probs (p): [B, k + 1, V],
    where target_probs[:, i] is the target's distribution for the position of draft_tokens[:, i]
    and target_probs[:, k] the one after the last draft. ``num_drafts``: LongTensor [B] in 0..k
    (default k): row b uses only its first num_drafts[b] drafts and takes its bonus from
    target_probs[b, num_drafts[b]]. Row b emits between 1 and num_drafts[b] + 1 tokens:
    DRAFT_ACCEPTED for each accepted draft, then one TARGET_RECOVERED or BONUS token.
    """
    if draft_tokens.dim() != 2:
        raise EngineError(f"draft_tokens must be [B, k], got {tuple(draft_tokens.shape)}")
    batch, k = draft_tokens.shape
    if target_probs.dim() != 3 or target_probs.shape[:2] != (batch, k + 1):
        raise EngineError(
            f"target_probs must be [B, k + 1, V] = [{batch}, {k + 1}, V], "
            f"got {tuple(target_probs.shape)}"
        )
    vocab = target_probs.shape[2]
    if draft_probs.shape != (batch, k, vocab):
        raise EngineError(
            f"draft_probs must be [B, k, V] = [{batch}, {k}, {vocab}], "
            f"got {tuple(draft_probs.shape)}"
        )
    if len(generators) != batch:
        raise EngineError(f"need one generator per row: got {len(generators)} for {batch} rows")
    device = target_probs.device
    if num_drafts is None:
        num_drafts = torch.full((batch,), k, dtype=torch.long, device=device)
    num_drafts = num_drafts.to(device=device, dtype=torch.long)
    if num_drafts.shape != (batch,) or bool(((num_drafts < 0) | (num_drafts > k)).any()):
        raise EngineError(f"num_drafts must be [B] with values in 0..{k}, got {num_drafts}")
    if batch == 0:
        return []

    # Uniforms: row b draws num_drafts[b] + 1 from its own generator; u_test[b, i] for the
    # acceptance test of draft i, u_last[b] for the recovered or bonus token.
    counts = num_drafts.tolist()
    u_test = torch.zeros(batch, k, dtype=torch.float64, device=device)  # [B, k]
    u_last = torch.empty(batch, dtype=torch.float64, device=device)  # [B]
    for row, (gen, n) in enumerate(zip(generators, counts, strict=True)):
        u = torch.rand(n + 1, generator=gen, device=gen.device, dtype=torch.float64).to(device)
        u_test[row, :n] = u[:n]
        u_last[row] = u[n]

    rows = torch.arange(batch, device=device)
    tokens = draft_tokens.to(device=device, dtype=torch.long)  # [B, k]
    index = tokens[:, :, None]  # [B, k, 1]
    p_x = target_probs[:, :k].double().gather(-1, index).squeeze(-1)  # [B, k]: p_i(x_i)
    q_x = draft_probs.to(device).double().gather(-1, index).squeeze(-1)  # [B, k]: q_i(x_i)
    in_range = torch.arange(k, device=device)[None, :] < num_drafts[:, None]  # [B, k]
    rejected = in_range & ~_accept_mask(p_x, q_x, u_test)  # [B, k]
    any_rejected = rejected.any(dim=-1)  # [B]
    # number accepted = index of the first rejection, or num_drafts when none was rejected
    first_rejected = rejected.int().argmax(dim=-1) if k > 0 else num_drafts  # [B]
    num_accepted = torch.where(any_rejected, first_rejected, num_drafts)  # [B]

    p_final = target_probs[rows, num_accepted].double()  # [B, V]: p at the first unaccepted slot
    if k > 0:
        q_final = draft_probs.to(device)[rows, num_accepted.clamp(max=k - 1)].double()  # [B, V]
        final_probs = torch.where(
            any_rejected[:, None], _recovery_probs(p_final, q_final), p_final
        )  # [B, V]
    else:
        final_probs = p_final
    final_tokens = sample_from_probs(final_probs, u_last)  # [B]

    out: list[tuple[list[int], list[Provenance]]] = []
    for row_tokens, n_acc, last, rej in zip(
        tokens.tolist(),
        num_accepted.tolist(),
        final_tokens.tolist(),
        any_rejected.tolist(),
        strict=True,
    ):
        last_prov = Provenance.TARGET_RECOVERED if rej else Provenance.BONUS
        out.append(
            (
                [*row_tokens[:n_acc], last],
                [*([Provenance.DRAFT_ACCEPTED] * n_acc), last_prov],
            )
        )
    return out
