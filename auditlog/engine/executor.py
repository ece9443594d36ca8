"""One engine step's compute: k draft passes (when speculating), one target pass, sampling.

Speculative decoding (Leviathan et al. 2023): the draft proposes k tokens per decoding sequence
from its own paged cache; the target scores all k + 1 positions of every sequence in the same
batched pass as the other sequences' prefill chunks; ``verify_drafts`` accepts a prefix per
sequence. Rejected positions are rolled back by lowering the cached-token counts (their cache
slots are simply overwritten later).
"""

from __future__ import annotations

import torch

from auditlog.engine.model_runner import Chunk, ModelRunner
from auditlog.engine.sampler import draw_uniforms, probs_from_logits, sample, sample_from_probs
from auditlog.engine.scheduler import ScheduledSequence
from auditlog.engine.sequence import Sequence as Seq
from auditlog.engine.speculative import verify_drafts
from auditlog.errors import ConfigurationError
from auditlog.events import Provenance

__all__ = ["StepExecutor"]


class StepExecutor:
    def __init__(
        self, *, target: ModelRunner, draft: ModelRunner | None, num_speculative_tokens: int
    ) -> None:
        self.target = target
        self.draft = draft
        self.num_speculative_tokens = num_speculative_tokens

    def propose(self, seqs: list[Seq]) -> tuple[torch.Tensor, torch.Tensor]:
        """Draft k tokens per sequence -> (tokens LongTensor [S, k], probs q [S, k, V]).

        Pass 1 feeds each sequence's tokens the draft has not cached yet (catch-up); passes
        2..k feed the previous draft token. The draft caches positions up to n + k - 2.
        """
        if self.draft is None:  # unreachable: spec sequences need a draft
            raise ConfigurationError("speculative step without a draft model")
        k = self.num_speculative_tokens
        params = [s.params for s in seqs]
        generators = [s.generator for s in seqs]
        chunks: list[Chunk] = [
            (s.block_table, s.num_draft_cached_tokens, s.token_ids[s.num_draft_cached_tokens :])
            for s in seqs
        ]
        ends, offset = [], 0
        for chunk in chunks:
            offset += len(chunk[2])
            ends.append(offset - 1)
        logits = self.draft.forward(chunks, ends)  # [S, V]
        tokens: list[torch.Tensor] = []
        probs: list[torch.Tensor] = []
        for j in range(k):
            if j > 0:
                previous = tokens[-1].tolist()
                chunks = [
                    (s.block_table, s.num_tokens + j - 1, [t])
                    for s, t in zip(seqs, previous, strict=True)
                ]
                logits = self.draft.forward(chunks, range(len(seqs)))  # [S, V]
            q = probs_from_logits(logits, params)  # [S, V]
            tokens.append(sample_from_probs(q, draw_uniforms(generators, q.device)))  # [S]
            probs.append(q)
        for s in seqs:
            s.num_draft_cached_tokens = s.num_tokens + k - 1
        return torch.stack(tokens, dim=1), torch.stack(probs, dim=1)

    def run_target(
        self,
        scheduled: list[ScheduledSequence],
        spec: list[Seq],
        proposal: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> list[tuple[Seq, list[int], list[Provenance]]]:
        """One target pass over every scheduled chunk; sample or verify; advance cache counts."""
        k = self.num_speculative_tokens
        draft_rows = proposal[0].tolist() if proposal is not None else []
        chunks: list[Chunk] = []
        logits_indices: list[int] = []
        plain_rows: list[int] = []  # logits row of each sequence that samples one token
        plain: list[Seq] = []
        spec_rows: list[int] = []  # logits rows of the k + 1 verification positions
        offset = 0
        for item in scheduled:
            seq, n = item.seq, item.num_query_tokens
            if item.is_speculative:
                # newest token at position num_tokens - 1, then drafts at num_tokens .. + k - 1
                tokens = [seq.token_ids[-1], *draft_rows[len(spec_rows) // (k + 1)]]
                spec_rows.extend(range(len(logits_indices), len(logits_indices) + n))
                logits_indices.extend(range(offset, offset + n))
            else:
                tokens = seq.token_ids[seq.num_cached_tokens : seq.num_cached_tokens + n]
                if seq.num_cached_tokens + n == seq.num_tokens:  # chunk ends the known tokens
                    plain_rows.append(len(logits_indices))
                    plain.append(seq)
                    logits_indices.append(offset + n - 1)
            chunks.append((seq.block_table, seq.num_cached_tokens, tokens))
            offset += n
        logits = self.target.forward(chunks, logits_indices)  # [N, V]

        produced: dict[int, tuple[list[int], list[Provenance]]] = {}
        if plain:
            sampled = sample(
                logits[plain_rows], [s.params for s in plain], [s.generator for s in plain]
            ).tolist()
            for seq, token in zip(plain, sampled, strict=True):
                produced[id(seq)] = ([token], [Provenance.TARGET])
        if proposal is not None:
            params = [s.params for s in spec for _ in range(k + 1)]
            target_probs = probs_from_logits(logits[spec_rows], params)  # [S * (k+1), V]
            verdicts = verify_drafts(
                proposal[0],
                proposal[1],
                target_probs.view(len(spec), k + 1, -1),  # [S, k + 1, V]
                [s.generator for s in spec],
            )
            for seq, (tokens, provs) in zip(spec, verdicts, strict=True):
                produced[id(seq)] = (tokens, provs)
        results = []
        for item in scheduled:
            seq = item.seq
            tokens, provs = produced.get(id(seq), ([], []))
            if item.is_speculative:
                # KV rollback by length: keep the newest token and the accepted drafts
                num_accepted = len(tokens) - 1
                seq.num_cached_tokens = seq.num_tokens + num_accepted
                seq.num_draft_cached_tokens = min(
                    seq.num_draft_cached_tokens, seq.num_cached_tokens
                )
            else:
                seq.num_cached_tokens += item.num_query_tokens
            results.append((seq, tokens, provs))
        return results
