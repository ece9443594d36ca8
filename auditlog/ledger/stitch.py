"""Join checked ranges of a log, in log order, into the state of the log after them.

The state (:class:`LogState`) is what a record's checks need of the records before it: the
Merkle frontier, the open request chains and the ids already used, the tokens records of steps
whose manifest has not come yet, the counts, the sealed requests and erasure records, and the
roots at checkpoint sizes. :class:`Stitcher` starts from the empty log or from a saved state,
and adds each :class:`~auditlog.ledger.scan.RangeResult`: the range's records of chains begun
earlier are checked against the open chains (as the one chain checker would have, record by
record), its first manifest of each step against the step's earlier tokens records, its first
start of each request id against the ids used before, its own tree is appended to the frontier
and its checkpoint sizes get the roots of the whole tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auditlog.ledger.chain import ChainChecker, OpenChain, OpenStep
from auditlog.ledger.hashes import EMPTY_ROOT
from auditlog.ledger.merkle_tree import MerkleFrontier
from auditlog.ledger.node_check import NodeCheck
from auditlog.ledger.report import FindingCode, FindingCollector
from auditlog.ledger.scan import RangeResult

__all__ = ["LogState", "Misaligned", "Stitcher"]


class Misaligned(Exception):
    """A range of a parallel plan held another number of rows than planned: the caller checks
    the log again as one range (the findings then place each record exactly)."""


@dataclass(slots=True)
class LogState:
    """The state of a log after its first ``frontier.size`` records (see the module docstring)."""

    frontier: MerkleFrontier = field(default_factory=MerkleFrontier)
    chains: dict[str, OpenChain] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    open_steps: dict[int, OpenStep] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    sealed: dict[str, tuple[int, str]] = field(default_factory=dict)
    erasures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    admin: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    starts: dict[str, dict[str, Any]] = field(default_factory=dict)
    roots: dict[int, bytes] = field(default_factory=lambda: {0: EMPTY_ROOT})
    first_ts: dict[int, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.frontier.size


_COUNTS = ("started", "ended", "steps", "tokens", "payloads", "absent")


class Stitcher:
    """Adds checked ranges, in log order, to a :class:`LogState`."""

    def __init__(
        self,
        out: FindingCollector,
        state: LogState,
        *,
        high_nodes: NodeCheck | None = None,
    ) -> None:
        self.out, self.state, self.high_nodes = out, state, high_nodes
        self.seqs: list[int] = []
        self.chains = ChainChecker(out.add)
        self.chains.chains, self.chains.ended = state.chains, state.ended
        self.chains.open_steps = state.open_steps
        counts = state.counts
        c = self.chains
        c.num_started, c.num_ended = counts.get("started", 0), counts.get("ended", 0)
        c.num_steps, c.num_tokens = counts.get("steps", 0), counts.get("tokens", 0)

    @property
    def size(self) -> int:
        return self.state.frontier.size

    def add(self, result: RangeResult, *, planned: int | None = None) -> None:
        """Join the next range; ``planned``: the rows it must hold (raises :class:`Misaligned`)."""
        if result.start != self.size or (planned is not None and result.num_rows != planned):
            raise Misaligned
        self.out.absorb(result.findings, result.suppressed)
        self._tree(result)
        self._chains(result.chains)
        state = self.state
        state.first_ts.update(result.first_ts)
        state.sealed.update(result.sealed)
        state.erasures.extend(result.erasures)
        state.admin.extend(result.admin)
        state.starts.update(result.starts)
        self.seqs.extend(result.seqs)
        counts = state.counts
        counts["payloads"] = counts.get("payloads", 0) + result.num_payloads
        counts["absent"] = counts.get("absent", 0) + result.num_absent

    def _tree(self, result: RangeResult) -> None:
        state = self.state
        if result.based:
            state.frontier = result.frontier
            state.roots.update(result.roots)
            for index, level, idx, digest in result.high_nodes:
                self._check_high(index, [(level, idx, digest)])
            return
        for size, subtrees in result.snapshots.items():
            at = state.frontier.copy()
            for level, digest in subtrees:
                at.append_subtree(level, digest)
            state.roots[size] = at.root()
        last = result.start + result.num_rows - 1
        for level, digest in result.frontier.subtrees():
            self._check_high(last, state.frontier.append_subtree(level, digest))

    def _check_high(self, index: int, new_nodes: list[tuple[int, int, bytes]]) -> None:
        if self.high_nodes is not None and new_nodes:
            self.high_nodes.check(index, new_nodes)

    def _chains(self, ranged: ChainChecker) -> None:
        """What the range left open: chains begun before it, first manifests, first starts."""
        g = self.chains
        for index, h, leaf, payload in ranged.deferred:
            if h["kind"] == "tokens":
                g.tokens_chain(index, h, leaf, payload)
            else:
                g.end_chain(index, h["request_id"], h)
        self._manifests(ranged)
        for index, rid in ranged.starts:
            if rid in g.ended or rid in g.chains:
                g.restarted(index, rid)
                g.chains.pop(rid, None)
        g.ended |= ranged.ended
        g.chains.update(ranged.chains)
        for step, (first, entries, rids) in ranged.open_steps.items():
            earlier = g.open_steps.get(step)
            if earlier is None:
                g.open_steps[step] = (first, entries, rids)
            else:
                g.open_steps[step] = (earlier[0], earlier[1] + entries, earlier[2] | rids)
        g.num_started += ranged.num_started
        g.num_ended += ranged.num_ended
        g.num_steps += ranged.num_steps
        g.num_tokens += ranged.num_tokens

    def _manifests(self, ranged: ChainChecker) -> None:
        g = self.chains
        for index, h, seen in ranged.deferred_manifests:
            _, earlier, _ = g.open_steps.pop(h["step"], (index, [], set()))
            g.compare_manifest(index, h["step"], h["batch"], earlier + seen)
        for step, index in ranged.first_manifests.items():
            earlier_step = g.open_steps.pop(step, None)
            if earlier_step is not None:
                first, entries, _ = earlier_step
                self.out.add(
                    index,
                    FindingCode.STEP_MISMATCH,
                    "the tokens records since the step's previous manifest",
                    entries,
                    f"record {index}: step {step} manifest does not match its tokens records: "
                    f"not in manifest {sorted(rid for rid, _ in entries)} (from record {first})",
                )

    def finish(self) -> LogState:
        """Report what stays open (chains: warnings; steps: failures); the final state."""
        self.chains.finish()
        c, counts = self.chains, self.state.counts
        counts.update(started=c.num_started, ended=c.num_ended, steps=c.num_steps)
        counts["tokens"] = c.num_tokens
        return self.state

    def counts(self, num_checkpoints: int) -> dict[str, int]:
        c, counts = self.chains, self.state.counts
        return {
            "records": self.size,
            "requests_started": c.num_started,
            "requests_ended": c.num_ended,
            "open_chains": len(c.chains),
            "steps": c.num_steps,
            "tokens": c.num_tokens,
            "checkpoints": num_checkpoints,
            "payloads": counts.get("payloads", 0),
            "payloads_absent": counts.get("absent", 0),
        }
