"""Property: ``--jobs 2`` (ranges of 4 records joined by the stitcher) gives the verdict and the
error codes of one pass on every mutated database (docs/TRUST.md section 5: ranges change how
records are read, not what is checked). The mutations are those of
``test_verify_property.py`` (any cell, a deleted or added row of any table, an extra log, a
consistent unsigned tail), by the database administrator; C8-C11.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.pool import NullPool
from test_verify_property import _disable_guards, _mutate, copies

from auditlog.store.db import normalize_url
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
    url = fresh_copy()
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            _disable_guards(conn)
        try:
            with engine.begin() as conn:
                _mutate(conn, data.draw)
        except (DBAPIError, StatementError):
            assume(False)
    finally:
        engine.dispose()
    one, ranged = _verdict(url, rec, 1), _verdict(url, rec, 2)
    assert ranged == one
