"""Property (issue 9): no mutation of a small demo-like database verifies intact (exit 0).

Mutations, drawn by hypothesis (deterministic under CI=true, see tests/conftest.py), of a
database whose payloads are sealed: any cell of any table the verifier covers (``data_keys``
included), a deleted row of any table, an added row (records at any seq,
payloads, nodes, checkpoints, signing keys, logs), an extra log with records, a consistent
unsigned tail. The attacker is the database administrator (triggers off); nobody holds the
trusted key or writes the witness. Columns that no signature or hash covers are named in
docs/TRUST.md and left out: ``checkpoints.ts``, ``signing_keys.created``/``retired``,
``logs.created``. Each example gets its own copy of the recorded database (a file copy on
SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL). The set-up and the mutations live in
``verify_property_helpers.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verify_property_helpers import copies, mutated_copy

from auditlog.ledger.report import Verdict
from auditlog.verifier import verify_database

__all__ = ["copies"]  # the fixture of fresh copies of a recorded database


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_mutation_verifies_intact(
    copies: tuple[dict[str, Any], Callable[[], str]], data: Any
) -> None:
    rec, fresh_copy = copies
    url = mutated_copy(fresh_copy, data.draw)
    report = verify_database(url, keys=[rec["key"]], witness_dir=rec["witness"])
    assert report.verdict is not Verdict.INTACT, "a mutated database verified intact"
