"""Evidence on read-only storage: ``verify``, ``export`` and ``verify-bundle`` work on a database
and its witness files in a read-only directory, as auditors receive them (a WORM mount, a copy
they may not change), and change nothing there.

Tests run as root, which file modes do not stop. So the directory is checked twice: as root
(nothing may be created or changed, and a read-only engine refuses writes: ``mode=ro`` is in
effect), and as the unprivileged user ``nobody`` through ``setpriv``, for whom the directory
really cannot be written; there a database in WAL mode can only be read with ``immutable=1``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.ledger import DirectoryWitness, Signer
from auditlog.recorder import AuditRecorder
from auditlog.store import create_db_engine
from auditlog.synthetic import SyntheticEngine

ORIGIN = "test.example/read-only"
ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(params=["rollback-journal", "wal"])
def evidence(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, object]]:
    """A recorded database, its witness and one bundle, copied to a read-only directory that
    every user can read (``wal``: the copy is switched to WAL mode first, as a live database is)."""
    signer = Signer.generate(ORIGIN)
    engine = SyntheticEngine(seed=5)
    db = tmp_path / "audit.db"
    with AuditRecorder.open(
        f"sqlite:///{db}",
        origin=ORIGIN,
        signers=[signer],
        witnesses=[DirectoryWitness(tmp_path / "witness")],
        spool_path=tmp_path / "spool",
    ) as recorder:
        for event in engine.run(4):
            recorder.record(event)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.db", "witness"]  # no -wal/-shm
    request_id = next(iter(engine.truth))
    made = CliRunner().invoke(
        app, ["export", "--db", str(db), "--request", request_id, "--out", str(tmp_path / "b")]
    )
    assert made.exit_code == 0, made.output
    base = Path(tempfile.mkdtemp(prefix="auditlog-evidence-"))
    base.chmod(0o755)
    box = base / "evidence"
    box.mkdir()
    shutil.copy(db, box / "audit.db")
    shutil.copytree(tmp_path / "witness", box / "witness")
    shutil.copy(tmp_path / "b", box / "trail.bundle")
    if request.param == "wal":
        with sqlite3.connect(box / "audit.db") as conn:
            assert conn.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
        conn.close()
        assert not (box / "audit.db-wal").exists()
    out = base / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)  # where the unprivileged user may write its export
    for path in [box, *box.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield {"box": box, "out": out, "key": signer.verifier_key, "request": request_id}
    finally:
        for path in [box, *box.rglob("*")]:
            path.chmod(stat.S_IRWXU)
        shutil.rmtree(base)


def _commands(ev: dict[str, object], out: Path) -> list[list[str]]:
    box = ev["box"]
    assert isinstance(box, Path)
    db, key = str(box / "audit.db"), str(ev["key"])
    return [
        ["verify", "--db", db, "--key", key, "--witness-dir", str(box / "witness")],
        ["export", "--db", db, "--request", str(ev["request"]), "--out", str(out / "t.bundle")],
        ["export", "--db", db, "--request", str(ev["request"]), "--out", str(out / "t.html"),
         "--format", "html", "--key", key],
        ["verify-bundle", str(box / "trail.bundle"), "--key", key],
    ]  # fmt: skip


def test_as_root_nothing_in_the_directory_changes(evidence: dict[str, object]) -> None:
    box, out = evidence["box"], evidence["out"]
    assert isinstance(box, Path) and isinstance(out, Path)
    before = _tree(box)
    for argv in _commands(evidence, out):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, (argv, result.output)
    assert _tree(box) == before
    assert (out / "t.bundle").read_bytes() == (box / "trail.bundle").read_bytes()
    # The read-only engine cannot write, whoever runs it (mode=ro is in effect).
    engine = create_db_engine(f"sqlite:///{box / 'audit.db'}", read_only=True)
    try:
        with pytest.raises(OperationalError, match="readonly"), engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE intruder (x INTEGER)")
    finally:
        engine.dispose()
    assert _tree(box) == before


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)
def test_as_an_unprivileged_user_on_a_directory_it_cannot_write(
    evidence: dict[str, object],
) -> None:
    box, out = evidence["box"], evidence["out"]
    assert isinstance(box, Path) and isinstance(out, Path)
    before = _tree(box)
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    for argv in _commands(evidence, out):
        proc = subprocess.run(
            [*as_nobody, sys.executable, "-m", "auditlog", *argv],
            cwd=out,
            env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(out)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert _tree(box) == before
    assert (out / "t.bundle").read_bytes() == (box / "trail.bundle").read_bytes()
