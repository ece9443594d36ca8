"""Block manager: free list, block tables, reference counts; scheduler budget and preemption."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from auditlog.engine.block_manager import BlockManager
from auditlog.engine.sampler import SamplingParams, make_generator
from auditlog.engine.scheduler import Scheduler
from auditlog.engine.sequence import Sequence, SequenceStatus
from auditlog.errors import EngineError

pytestmark = pytest.mark.engine


def test_grow_release_and_free_list() -> None:
    bm = BlockManager(num_blocks=4, block_size=4)
    table: list[int] = []
    assert bm.blocks_needed(table, 5) == 2
    bm.grow(table, 5)
    assert table == [0, 1] and bm.num_free_blocks == 2
    bm.grow(table, 8)  # still fits in two blocks
    assert table == [0, 1]
    assert not bm.can_grow(table, 17)
    with pytest.raises(EngineError, match="KV cache exhausted: need 3 blocks, 2 free"):
        bm.grow(table, 17)
    bm.release(table)
    assert table == [] and bm.num_free_blocks == 4


def test_fork_shares_full_blocks_until_last_release() -> None:
    bm = BlockManager(num_blocks=4, block_size=4)
    parent: list[int] = []
    bm.grow(parent, 10)  # 3 blocks, the last one partly filled
    child = bm.fork(parent, 10)
    assert child == parent[:2]  # only full blocks are shared
    assert bm.ref_counts[parent[0]] == 2 and bm.ref_counts[parent[2]] == 1
    bm.release(parent)
    assert bm.num_free_blocks == 2  # shared blocks stay held by the child
    bm.release(child)
    assert bm.num_free_blocks == 4
    with pytest.raises(EngineError, match="released more often"):
        bm.release([0])


def _seq(rid: str, n: int, arrival: int) -> Sequence:
    return Sequence(
        request_id=rid,
        arrival=arrival,
        prompt_token_ids=tuple(range(n)),
        params=SamplingParams(),
        generator=make_generator(0),
    )


def test_scheduler_token_budget_chunks_prefill_fcfs() -> None:
    bm = BlockManager(num_blocks=64, block_size=4)
    sched = Scheduler(
        block_manager=bm, max_num_batched_tokens=10, max_num_seqs=8, num_speculative_tokens=0
    )
    a, b, c = _seq("a", 7, 0), _seq("b", 6, 1), _seq("c", 3, 2)
    for s in (a, b, c):
        sched.add(s)
    plan = sched.schedule()
    assert [(s.seq.request_id, s.num_query_tokens) for s in plan.scheduled] == [("a", 7), ("b", 3)]
    assert plan.num_batched_tokens == 10
    a.num_cached_tokens, b.num_cached_tokens = 7, 3
    a.token_ids.append(99)  # a sampled its first token
    plan = sched.schedule()
    # a decodes one token, b finishes its prefill (3 tokens), c is admitted with the rest
    assert [(s.seq.request_id, s.num_query_tokens) for s in plan.scheduled] == [
        ("a", 1),
        ("b", 3),
        ("c", 3),
    ]


def test_scheduler_preempts_newest_when_blocks_run_out() -> None:
    bm = BlockManager(num_blocks=4, block_size=4)
    sched = Scheduler(
        block_manager=bm, max_num_batched_tokens=64, max_num_seqs=8, num_speculative_tokens=0
    )
    old, new = _seq("old", 8, 0), _seq("new", 7, 1)
    sched.add(old)
    sched.add(new)
    sched.schedule()
    assert bm.num_free_blocks == 0
    for s in (old, new):
        s.num_cached_tokens = s.num_tokens
        s.token_ids.append(1)
    plan = sched.schedule()  # old needs a 3rd block: new is preempted, never a crash
    assert [s.seq.request_id for s in plan.scheduled] == ["old"]
    assert plan.preempted == [new] and new.status is SequenceStatus.WAITING
    assert (new.num_cached_tokens, new.block_table, new.num_preemptions) == (0, [], 1)
    assert sched.waiting[0] is new  # first in line for recomputation
