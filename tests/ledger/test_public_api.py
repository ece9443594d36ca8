"""The ledger's public API is pinned (STYLE 9)."""

from __future__ import annotations

import auditlog.ledger as ledger


def test_all_is_sorted_and_complete() -> None:
    assert ledger.__all__ == sorted(ledger.__all__, key=lambda n: (not n.isupper(), n))
    for name in ledger.__all__:
        assert hasattr(ledger, name), name
    assert {
        "build_record",
        "MerkleFrontier",
        "verify_log",
        "DirectoryWitness",
        "Signer",
        "StoredRecord",
        "ZERO_HASH",
    } <= set(ledger.__all__)


def test_ledger_imports_no_database_web_or_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, auditlog.ledger; bad = [m for m in ('sqlalchemy', 'fastapi', 'torch') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
