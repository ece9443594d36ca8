"""The top-level API is small, pinned and free of side effects at import (STYLE.md 8, 9)."""

from __future__ import annotations

import subprocess
import sys

import auditlog


def test_all_is_pinned_and_sorted() -> None:
    assert auditlog.__all__ == [
        "AuditRecorder",
        "AuditlogError",
        "BatchStep",
        "FailMode",
        "FinishReason",
        "ModelRef",
        "Provenance",
        "RequestFinished",
        "RequestStarted",
        "VerificationError",
        "__version__",
    ]
    assert auditlog.__all__ == sorted(auditlog.__all__)
    for name in auditlog.__all__:
        assert getattr(auditlog, name) is not None


def test_import_loads_no_database_driver_and_no_torch() -> None:
    """Importing auditlog (and the ledger) must not pull in SQLAlchemy, FastAPI or torch."""
    code = (
        "import sys, auditlog, auditlog.ledger, auditlog.events; "
        "bad = [m for m in ('sqlalchemy', 'fastapi', 'torch') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_py_typed_marker_ships() -> None:
    from importlib.resources import files

    assert files("auditlog").joinpath("py.typed").is_file()


def test_store_recorder_verifier_and_api_work_without_torch() -> None:
    """torch is an optional extra: everything but the engine and the server imports without it."""
    code = (
        "import sys; sys.modules['torch'] = None; "
        "import auditlog.store, auditlog.recorder, auditlog.verifier, auditlog.bundle; "
        "import auditlog.cli; "
        "from auditlog.api import create_app; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
