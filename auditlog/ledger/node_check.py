"""Stored Merkle nodes against the subtrees recomputed from the records (docs/FORMAT.md
section 4): every stored node equals its subtree, none is missing, none lies outside the tree."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from auditlog.ledger.report import FindingCode, FindingCollector

__all__ = ["NodeCheck", "NodeLevels"]

#: Stored nodes per level, ``{level: iterator of (idx, hash) by increasing idx}``.
NodeLevels = Mapping[int, Iterable[tuple[int, bytes]]]


class NodeCheck:
    """Stored Merkle nodes against the subtrees the frontier completes, level by level."""

    def __init__(self, levels: NodeLevels, out: FindingCollector) -> None:
        self.iters: dict[int, Iterator[tuple[int, bytes]]] = {
            level: iter(rows) for level, rows in levels.items()
        }
        self.heads: dict[int, tuple[int, bytes] | None] = {}
        self.out = out

    def _peek(self, level: int) -> tuple[int, bytes] | None:
        if level not in self.heads:
            rows = self.iters.get(level)
            self.heads[level] = None if rows is None else next(rows, None)
        return self.heads[level]

    def _pop(self, level: int) -> None:
        del self.heads[level]

    def check(self, index: int, new_nodes: list[tuple[int, int, bytes]]) -> None:
        for level, idx, digest in new_nodes:
            head = self._peek(level)
            while head is not None and head[0] < idx:
                self._extra(level, head[0], "duplicate or out of order")
                self._pop(level)
                head = self._peek(level)
            if head is None or head[0] > idx:
                self.out.add(
                    index,
                    FindingCode.NODE_MISSING,
                    digest.hex(),
                    None,
                    f"node ({level}, {idx}) of the tree is not stored: proofs cannot be served",
                )
                continue
            self._pop(level)
            if head[1] != digest:
                self.out.add(
                    index,
                    FindingCode.NODE_MISMATCH,
                    digest.hex(),
                    head[1].hex(),
                    f"node ({level}, {idx}) differs from the subtree recomputed from the "
                    f"records: expected {digest.hex()}, stored {head[1].hex()}",
                )

    def finish(self, size: int) -> None:
        for level in self.iters:
            while (head := self._peek(level)) is not None:
                self._extra(level, head[0], f"outside the tree of {size} records")
                self._pop(level)

    def _extra(self, level: int, idx: int, why: str) -> None:
        self.out.add(
            None,
            FindingCode.NODE_EXTRA,
            "no node",
            f"({level}, {idx})",
            f"stored node ({level}, {idx}) is {why}: no record accounts for it",
        )
