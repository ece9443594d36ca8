"""Paged KV cache bookkeeping: fixed-size blocks, a free list, per-sequence block tables.

Block ``i`` covers cache slots ``i * block_size .. (i + 1) * block_size - 1`` in every layer (of
the target and of the draft model alike). Blocks are reference-counted so that full blocks of a
common prefix can be shared by several sequences (``fork``); a block returns to the free list when
its last holder releases it. The manager only moves integers; it never touches tensors.
"""

from __future__ import annotations

from collections import deque

from auditlog.errors import EngineError

__all__ = ["BlockManager"]


class BlockManager:
    def __init__(self, *, num_blocks: int, block_size: int) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.free_block_ids: deque[int] = deque(range(num_blocks))
        self.ref_counts: list[int] = [0] * num_blocks

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_block_ids)

    def blocks_needed(self, block_table: list[int], num_tokens: int) -> int:
        """How many more blocks ``block_table`` needs to hold ``num_tokens`` tokens."""
        return max(0, -(-num_tokens // self.block_size) - len(block_table))

    def can_grow(self, block_table: list[int], num_tokens: int) -> bool:
        return self.blocks_needed(block_table, num_tokens) <= self.num_free_blocks

    def grow(self, block_table: list[int], num_tokens: int) -> None:
        """Append free blocks to ``block_table`` until it holds ``num_tokens`` tokens.

        The caller MUST check ``can_grow`` first; running out here is an engine bug.
        """
        needed = self.blocks_needed(block_table, num_tokens)
        if needed > self.num_free_blocks:
            raise EngineError(
                f"KV cache exhausted: need {needed} blocks, {self.num_free_blocks} free"
            )
        for _ in range(needed):
            block_id = self.free_block_ids.popleft()
            self.ref_counts[block_id] = 1
            block_table.append(block_id)

    def release(self, block_table: list[int]) -> None:
        """Drop this table's reference to each of its blocks and empty the table."""
        for block_id in reversed(block_table):
            if self.ref_counts[block_id] <= 0:
                raise EngineError(f"block {block_id} released more often than it was held")
            self.ref_counts[block_id] -= 1
            if self.ref_counts[block_id] == 0:
                self.free_block_ids.append(block_id)
        block_table.clear()

    def fork(self, block_table: list[int], num_tokens: int) -> list[int]:
        """A new table sharing the *full* blocks that hold the first ``num_tokens`` tokens.

        Only full blocks are shared, so that no holder ever writes into a shared block; the new
        sequence recomputes the tail (``num_tokens % block_size`` tokens) into blocks of its own.
        """
        num_full = min(num_tokens // self.block_size, len(block_table))
        shared = block_table[:num_full]
        for block_id in shared:
            self.ref_counts[block_id] += 1
        return list(shared)
