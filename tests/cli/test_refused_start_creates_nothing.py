"""A refused start of ``auditlog demo``, ``serve`` and ``api`` creates or changes nothing (C10).

Bad input gets one clear line and exit 2, never a traceback, and the directory it ran in (and
every file's bytes, the witness directory's included) is as it was; a new PostgreSQL database
holds no table afterwards. Each command runs as a real process:

- a new database in a directory whose witness directory holds an earlier run's checkpoints:
  the witness check refuses before the database, a key, a keyring or a directory is created;
- a spool that cannot be replayed (``serve``): the database created to replay it is removed;
- a port already taken (``serve``, ``api --migrate``): the database it created is removed;
- an unusable ``--device``, a malformed trusted key (``api --migrate``): refused first.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_files import snapshot
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.cli.demo_cmd import DEMO_ORIGIN
from auditlog.ledger import DirectoryWitness, Signer
from auditlog.recorder import AuditRecorder
from auditlog.recorder.spool import spool_file
from auditlog.store.db import existing_tables
from auditlog.synthetic import SyntheticEngine

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "refused.test.invalid/engine-0"
TIMEOUT_S = 180


def _run(command: list[str], cwd: Path, **env: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "auditlog", *command],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _assert_refused(code: int, out: str, last_line_has: str) -> None:
    assert code == 2, out
    assert "Traceback" not in out, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("auditlog: error: ") and last_line_has in last, out


def _witnessed(tmp: Path, witness_dir: Path, signer: Signer) -> None:
    """An earlier run of ``signer``'s log: its checkpoints in ``witness_dir`` (its database
    elsewhere, then gone from view)."""
    with AuditRecorder.open(
        f"sqlite:///{tmp / 'earlier.db'}",
        origin=signer.name,
        signers=[signer],
        witnesses=[DirectoryWitness(witness_dir)],
        spool_path=tmp / "earlier.spool",
    ) as recorder:
        for event in SyntheticEngine(seed=1, prefix="early").run(2):
            recorder.record(event)
    assert DirectoryWitness(witness_dir).sizes(signer.name)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_demo_refused_by_its_witness_creates_nothing(tmp_path: Path, empty_db_url: str) -> None:
    """C10: a new database that the witness directory has seen larger is refused before the
    database, the signing key, the keyring or anything else is created."""
    run = tmp_path / "run"
    _witnessed(tmp_path, run / "witness", Signer.generate(DEMO_ORIGIN))
    db = "fresh.db" if empty_db_url.startswith("sqlite") else empty_db_url
    before = snapshot(run)
    code, out = _run(["demo", "--db", db, "-n", "1", "--state-dir", str(tmp_path / "st")], run)
    _assert_refused(code, out, "rolled back")
    assert snapshot(run) == before
    assert not (tmp_path / "st").exists()
    if not empty_db_url.startswith("sqlite"):
        assert existing_tables(empty_db_url) == []


def test_demo_with_an_unusable_device_creates_nothing(tmp_path: Path) -> None:
    code, out = _run(["demo", "--db", "fresh.db", "--device", "no-such-device"], tmp_path)
    _assert_refused(code, out, "--device")
    assert os.listdir(tmp_path) == []


def _serve_setup(tmp: Path) -> tuple[Path, list[str]]:
    """A directory with a signing key and an API keys file; the serve arguments."""
    run = tmp / "run"
    run.mkdir()
    runner = CliRunner()
    made = runner.invoke(app, ["keygen", ORIGIN, "--out", str(run / "signing.key")])
    assert made.exit_code == 0, made.output
    keys = ["client-key", "--tenant", "acme", "--principal", "svc"]
    made = runner.invoke(app, [*keys, "--api-keys", str(run / "api-keys.json")])
    assert made.exit_code == 0, made.output
    args = ["--key-file", "signing.key", "--api-keys", "api-keys.json", "--witness-dir", "witness",
            "--state-dir", str(tmp / "state")]  # fmt: skip
    return run, args


def test_serve_refused_by_its_witness_creates_nothing(tmp_path: Path, empty_db_url: str) -> None:
    """C10: no database, keyring or state directory for a log its witness has seen larger."""
    run, args = _serve_setup(tmp_path)
    signer = Signer.from_key_string((run / "signing.key").read_text().strip())
    _witnessed(tmp_path, run / "witness", signer)
    db = "fresh.db" if empty_db_url.startswith("sqlite") else empty_db_url
    before = snapshot(run)
    code, out = _run(["serve", "--db", db, *args, "--port", "0"], run)
    _assert_refused(code, out, "rolled back")
    assert snapshot(run) == before
    assert not (tmp_path / "state").exists()
    if not empty_db_url.startswith("sqlite"):
        assert existing_tables(empty_db_url) == []


def test_serve_refusing_its_spool_removes_the_database_it_created(tmp_path: Path) -> None:
    run, args = _serve_setup(tmp_path)
    spool = spool_file(tmp_path / "state", ORIGIN)
    spool.parent.mkdir()
    spool.write_bytes(b'{"checkpoint": 1}\n')
    before, state = snapshot(run), snapshot(tmp_path / "state")
    code, out = _run(["serve", "--db", "fresh.db", *args, "--port", "0"], run)
    _assert_refused(code, out, "cannot be replayed")
    assert snapshot(run) == before and snapshot(tmp_path / "state") == state


def test_serve_on_a_taken_port_removes_what_it_created(tmp_path: Path, busy_port: int) -> None:
    run, args = _serve_setup(tmp_path)
    before = snapshot(run)
    code, out = _run(["serve", "--db", "fresh.db", *args, "--port", str(busy_port)], run)
    _assert_refused(code, out, "did not start")
    assert snapshot(run) == before


def test_serve_with_an_unusable_device_creates_nothing(tmp_path: Path) -> None:
    run, args = _serve_setup(tmp_path)
    before = snapshot(run)
    code, out = _run(["serve", "--db", "fresh.db", *args, "--device", "no-such-device"], run)
    _assert_refused(code, out, "--device")
    assert snapshot(run) == before


def _api_key(run: Path) -> list[str]:
    made = CliRunner().invoke(app, ["keygen", "api.test.invalid/access", "--out", "api.key"])
    assert made.exit_code == 0, made.output
    return ["--signing-key", "api.key", "--origin", "api.test.invalid/access"]


def test_api_migrate_refused_creates_nothing(
    tmp_path: Path, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``api --migrate`` on a new database: a malformed trusted key is refused before the
    migration, and a server that cannot bind its port removes the database it created."""
    monkeypatch.chdir(tmp_path)
    args = ["api", "--db", "fresh.db", "--migrate", *_api_key(tmp_path)]
    before = snapshot(tmp_path)
    bad_key = {"AUDITLOG_API_TRUSTED_KEYS": '["not-a-key"]'}
    code, out = _run([*args, "--port", "0"], tmp_path, **bad_key)
    _assert_refused(code, out, "AUDITLOG_API_TRUSTED_KEYS")
    assert snapshot(tmp_path) == before
    code, out = _run([*args, "--port", str(busy_port)], tmp_path)
    _assert_refused(code, out, "did not start")
    assert snapshot(tmp_path) == before
