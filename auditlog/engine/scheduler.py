"""Continuous batching: which sequences run in the next step, and with how many tokens.

Every step the scheduler first serves the running sequences in arrival order (first come, first
served), then admits waiting ones while the token budget, the sequence limit and the free KV
blocks allow. A running sequence either continues its prefill with a chunk of uncached tokens, or
decodes: one token, or with speculation its newest token plus ``k`` draft positions to verify.
When the cache is full the newest running sequence is preempted: its blocks are freed and it goes
back to the front of the queue to be recomputed later (never a crash, never a lost token).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from auditlog.engine.block_manager import BlockManager
from auditlog.engine.sequence import Sequence, SequenceStatus

__all__ = ["ScheduledSequence", "Scheduler", "SchedulerOutput"]


@dataclass(frozen=True, slots=True)
class ScheduledSequence:
    seq: Sequence
    num_query_tokens: int  # target tokens fed this step (chunk, 1, or 1 + k)
    is_speculative: bool  # decode by verifying k draft tokens


@dataclass(frozen=True, slots=True)
class SchedulerOutput:
    scheduled: list[ScheduledSequence]
    preempted: list[Sequence]

    @property
    def num_batched_tokens(self) -> int:
        return sum(s.num_query_tokens for s in self.scheduled)


class Scheduler:
    def __init__(
        self,
        *,
        block_manager: BlockManager,
        max_num_batched_tokens: int,
        max_num_seqs: int,
        num_speculative_tokens: int,
    ) -> None:
        self.block_manager = block_manager
        self.max_num_batched_tokens = max_num_batched_tokens
        self.max_num_seqs = max_num_seqs
        self.num_speculative_tokens = num_speculative_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: deque[Sequence] = deque()

    def add(self, seq: Sequence) -> None:
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def remove(self, seq: Sequence) -> None:
        """Take ``seq`` out of the queues and free its blocks (finish, abort or error)."""
        if seq in self.running:
            self.running.remove(seq)
        if seq in self.waiting:
            self.waiting.remove(seq)
        self.block_manager.release(seq.block_table)
        seq.status = SequenceStatus.FINISHED

    def schedule(self) -> SchedulerOutput:
        budget = self.max_num_batched_tokens
        k = self.num_speculative_tokens
        scheduled: list[ScheduledSequence] = []
        preempted: list[Sequence] = []
        still_running: deque[Sequence] = deque()

        # 1. Running sequences, oldest first; preempt from the newest end when blocks run out.
        while self.running and budget > 0:
            seq = self.running.popleft()
            speculative = k > 0 and seq.is_decoding
            if seq.is_decoding:
                num_query = 1 + k if speculative else 1
            else:
                num_query = min(seq.num_prefill_tokens, budget)
            if num_query > budget:  # a whole verification chunk does not fit this step
                self.running.appendleft(seq)
                break
            # KV slots written this step: positions num_cached .. num_cached + num_query - 1
            needed = seq.num_cached_tokens + num_query
            while not self.block_manager.can_grow(seq.block_table, needed) and self.running:
                preempted.append(self._preempt(self.running.pop()))
            if not self.block_manager.can_grow(seq.block_table, needed):
                preempted.append(self._preempt(seq))
                continue
            self.block_manager.grow(seq.block_table, needed)
            scheduled.append(ScheduledSequence(seq, num_query, speculative))
            still_running.append(seq)
            budget -= num_query
        still_running.extend(self.running)  # those the budget did not reach keep their place
        self.running = still_running

        # 2. Admit waiting sequences in order while budget, sequence slots and blocks allow.
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            # admit only if the whole uncached sequence fits now, so admission does not thrash
            if not self.block_manager.can_grow(seq.block_table, seq.num_tokens + k):
                break
            num_query = min(seq.num_prefill_tokens, budget)
            self.block_manager.grow(seq.block_table, seq.num_cached_tokens + num_query)
            self.waiting.popleft()
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            scheduled.append(ScheduledSequence(seq, num_query, False))
            budget -= num_query
        return SchedulerOutput(scheduled, preempted)

    def _preempt(self, seq: Sequence) -> Sequence:
        """Free ``seq``'s blocks and queue it first in line for recomputation."""
        self.block_manager.release(seq.block_table)
        seq.num_cached_tokens = 0
        seq.num_draft_cached_tokens = 0
        seq.num_preemptions += 1
        seq.status = SequenceStatus.WAITING
        self.waiting.appendleft(seq)
        return seq
