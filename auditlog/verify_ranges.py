"""Read a log from the database in ranges and check them in parallel processes (``--jobs``).

The records after the start (0, or the size of a saved state) are cut into ranges of 2^k
records, each starting at a multiple of 2^k (the first one ends at one), k chosen to give each
process a few ranges and each range at least 2^16 records. A process checks one range at a time
with its own read-only connection (:func:`~auditlog.ledger.scan.scan_range`), including the
stored nodes of levels up to k whose subtrees end in the range; the main process joins the
results in log order (:mod:`auditlog.ledger.stitch`) and checks the nodes above level k. Fewer
records than two ranges, or one job, is one range read in the main process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from auditlog.ledger.merkle_tree import MerkleFrontier
from auditlog.ledger.node_check import NodeLevels
from auditlog.ledger.scan import RangeResult, scan_range
from auditlog.store import create_db_engine
from auditlog.store.audit_reads import iter_node_levels, iter_record_rows

__all__ = ["DbPlan", "RangePool", "default_jobs"]

#: Ranges hold at least 2^MIN_RANGE_LEVEL records.
MIN_RANGE_LEVEL = 16
#: Ranges per process, so that one slow range does not leave the others idle.
RANGES_PER_JOB = 4
#: Node levels beyond these are not of the tree: read whole, reported as extra.
_MAX_LEVEL = 62


def default_jobs() -> int:
    """Every core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class RangePool:
    """Worker processes, started on first use and kept for every log of one run."""

    def __init__(self, jobs: int, *, min_level: int = MIN_RANGE_LEVEL) -> None:
        self.jobs, self.min_level = jobs, min_level
        self._pool: Any = None

    def imap(self, tasks: list[_Task]) -> Iterator[RangeResult]:
        if self._pool is None:
            # spawn: a forked child would inherit the parent's database connections
            self._pool = multiprocessing.get_context("spawn").Pool(self.jobs)
        return iter(self._pool.imap(_run_task, tasks))

    def close(self) -> None:
        """Stop the workers (every range's result was taken, or the run failed)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


@dataclass(frozen=True, slots=True)
class _Task:
    db_url: str
    log_id: int
    origin: str
    lo: int | None  # read seq >= lo (None: no bound)
    hi: int | None  # and seq < hi (None: no bound)
    start: int
    base: MerkleFrontier | None
    check_sizes: frozenset[int]
    node_max: int
    request_id: str | None


_ENGINES: dict[str, Engine] = {}


def _run_task(task: _Task) -> RangeResult:
    """In a worker process: read and check one range."""
    engine = _ENGINES.get(task.db_url)
    if engine is None:
        engine = _ENGINES[task.db_url] = create_db_engine(task.db_url, read_only=True)
    with engine.connect() as conn:
        return _scan(conn, task)


def _scan(conn: Connection, task: _Task) -> RangeResult:
    lo = task.start if task.lo is not None else None

    def window(level: int) -> tuple[int | None, int | None] | None:
        if not 0 <= level <= task.node_max:
            return None
        return (None if lo is None else lo >> level, None if task.hi is None else task.hi >> level)

    return scan_range(
        task.origin,
        iter_record_rows(conn, task.log_id, task.lo, task.hi),
        start=task.start,
        base=task.base,
        check_sizes=set(task.check_sizes),
        nodes=iter_node_levels(conn, task.log_id, window=window),
        node_max=task.node_max,
        request_id=task.request_id,
    )


class DbPlan:
    """The ranges of one log in the database (a :class:`~auditlog.ledger.verify.RangePlan`)."""

    def __init__(
        self,
        db_url: str,
        conn: Connection,
        log_id: int,
        num_rows: int,
        pool: RangePool | None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.db_url, self.conn, self.log_id, self.num_rows = db_url, conn, log_id, num_rows
        self.pool, self.progress = pool, progress

    def _level(self, start: int) -> int | None:
        """k of the ranges after ``start``; None: one range in this process."""
        if self.pool is None or self.pool.jobs <= 1:
            return None
        per_range = (self.num_rows - start) // (self.pool.jobs * RANGES_PER_JOB)
        level = max(self.pool.min_level, per_range.bit_length())
        return level if self.num_rows - start >= 2 << level else None

    def single(self) -> DbPlan:
        return DbPlan(self.db_url, self.conn, self.log_id, self.num_rows, None, self.progress)

    def high_nodes(self, start: int) -> NodeLevels | None:
        level = self._level(start)
        if level is None:
            return None
        k = level

        def window(lv: int) -> tuple[int | None, int | None] | None:
            if 0 <= lv <= k:
                return None
            if lv > _MAX_LEVEL or lv < 0:
                return (None, None)
            return (start >> lv if start else None, None)

        return iter_node_levels(self.conn, self.log_id, window=window)

    def results(
        self, origin: str, base: MerkleFrontier, check_sizes: set[int], request_id: str | None
    ) -> Iterator[tuple[RangeResult, int | None]]:
        start = base.size
        level = self._level(start)
        if level is None or self.pool is None:
            task = _Task(
                self.db_url,
                self.log_id,
                origin,
                start or None,
                None,
                start,
                base,
                frozenset(check_sizes),
                _MAX_LEVEL + 1,
                request_id,
            )
            result = _scan_here(self.conn, task, self.progress)
            yield result, None
            return
        tasks = self._tasks(origin, base, check_sizes, request_id, level)
        for task, result in zip(tasks, self.pool.imap(tasks), strict=True):
            if self.progress is not None:
                self.progress(result.start + result.num_rows)
            planned = None if task.hi is None else task.hi - task.start
            yield result, planned

    def _tasks(
        self,
        origin: str,
        base: MerkleFrontier,
        check_sizes: set[int],
        request_id: str | None,
        level: int,
    ) -> list[_Task]:
        start, width = base.size, 1 << level
        bounds = [start, (start // width + 1) * width]
        while bounds[-1] + width < self.num_rows:
            bounds.append(bounds[-1] + width)
        tasks = []
        for i, lo in enumerate(bounds):
            hi = bounds[i + 1] if i + 1 < len(bounds) else None
            sizes = frozenset(s for s in check_sizes if s >= lo and (hi is None or s <= hi))
            tasks.append(
                _Task(
                    self.db_url,
                    self.log_id,
                    origin,
                    None if lo == 0 else lo,
                    hi,
                    lo,
                    base if i == 0 else None,
                    sizes,
                    level,
                    request_id,
                )
            )
        return tasks


def _scan_here(
    conn: Connection, task: _Task, progress: Callable[[int], None] | None
) -> RangeResult:
    """One range in this process (with progress)."""
    lo = task.lo

    def window(level: int) -> tuple[int | None, int | None] | None:
        if lo is None or not 0 <= level <= _MAX_LEVEL:
            return (None, None)
        return (lo >> level, None)

    return scan_range(
        task.origin,
        iter_record_rows(conn, task.log_id, task.lo, None),
        start=task.start,
        base=task.base,
        check_sizes=set(task.check_sizes),
        nodes=iter_node_levels(conn, task.log_id, window=window),
        node_max=None,
        request_id=task.request_id,
        progress=progress,
    )
