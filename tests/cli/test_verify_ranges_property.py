"""Property: ``--jobs 2`` (ranges of 4 records joined by the stitcher) gives the verdict and the
error codes of one pass on every mutated database (docs/TRUST.md section 5: ranges change how
records are read, not what is checked). The mutations are those of
``verify_property_helpers.py`` (any cell, a deleted or added row of any table, an extra log, a
consistent unsigned tail), by the database administrator; C8-C11.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verify_property_helpers import copies, mutated_copy

from auditlog.verifier import DatabaseReport, verify_database

__all__ = ["copies"]  # the fixture of fresh copies of a recorded database


def _verdict(url: str, rec: dict[str, Any], jobs: int) -> tuple[str, set[str]]:
    report: DatabaseReport = verify_database(
        url, keys=[rec["key"]], witness_dir=rec["witness"], jobs=jobs, min_range_level=2
    )
    found = {str(f.code) for f in report.findings if str(f.severity) == "error"}
    return str(report.verdict), found


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_ranges_give_the_verdict_of_one_pass(
    copies: tuple[dict[str, Any], Callable[[], str]], data: Any
) -> None:
    rec, fresh_copy = copies
    url = mutated_copy(fresh_copy, data.draw)
    one, ranged = _verdict(url, rec, 1), _verdict(url, rec, 2)
    assert ranged == one
