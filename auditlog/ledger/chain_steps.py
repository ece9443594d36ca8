"""The step rule of :class:`~auditlog.ledger.chain.ChainChecker` (docs/FORMAT.md section 7, C11):
the ``tokens`` records of step s since its previous manifest are exactly the manifest's
``batch``, in the same order; ``passes``, when present, is a non-negative integer.
"""

from __future__ import annotations

from typing import Any

from auditlog.ledger.report import FindingCode

__all__ = ["OpenStep", "StepRules"]

#: A step's tokens records since its previous manifest: (index of the first, [[rid, n]], rids).
OpenStep = tuple[int, list[list[Any]], set[str]]


class StepRules:
    """The manifests' part of the chain checker (its state is set up by the checker)."""

    report: Any
    ranged: bool
    num_steps: int
    open_steps: dict[int, OpenStep]
    first_manifests: dict[int, int]
    deferred_manifests: list[tuple[int, dict[str, Any], list[list[Any]]]]
    closed_steps: set[int]

    # -- steps ----------------------------------------------------------------------------------

    def _second_entry(self, index: int, step: int, rid: str) -> None:
        self.report(
            index,
            FindingCode.STEP_MISMATCH,
            "one tokens record per request",
            rid,
            f"record {index}: second tokens record of {rid!r} in step {step}",
        )

    def _manifest(self, index: int, h: dict[str, Any]) -> None:
        """C11: the step's tokens records are exactly the manifest's batch, in its order."""
        self.num_steps += 1
        step, batch, passes = h["step"], h["batch"], h.get("passes", 0)
        _, seen, _ = self.open_steps.pop(step, (index, [], set()))
        if type(passes) is not int or passes < 0:
            self.report(
                index,
                FindingCode.HEADER_INVALID,
                "a non-negative integer",
                passes,
                f"record {index}: step {step}: passes must be a non-negative integer",
            )
        if self.ranged and step not in self.closed_steps:
            # earlier ranges may hold this step's first tokens records: the stitcher decides
            self.closed_steps.add(step)
            if seen == batch:
                self.first_manifests[step] = index
            else:
                self.deferred_manifests.append((index, h, seen))
            return
        self.compare_manifest(index, step, batch, seen)

    def compare_manifest(self, index: int, step: int, batch: list[Any], seen: list[Any]) -> None:
        """Report a manifest whose batch is not the step's tokens records ``seen``."""
        if seen == batch:
            return
        expected = {rid: n for rid, n in batch}
        got = {rid: n for rid, n in seen}
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        wrong = sorted(r for r in set(got) & set(expected) if got[r] != expected[r])
        what = (
            f"missing {missing}, not in manifest {extra}, different counts {wrong}"
            if missing or extra or wrong
            else "the batch lists them in another order than the log"
        )
        self.report(
            index,
            FindingCode.STEP_MISMATCH,
            batch,
            seen,
            f"record {index}: step {step} manifest does not match its tokens records: {what}",
        )
