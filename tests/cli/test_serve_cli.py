"""``auditlog serve`` as a real process: start-up without its database, an unreplayable spool,
and SIGTERM (C22).

- The database does not answer: the command exits 2 with one line saying so, no traceback, and
  creates nothing (docs/integrations.md: the server starts only with its database).
- A spool of the log exists in the state directory but cannot be replayed: no writer starts.
- SIGTERM: a clean shutdown (final checkpoint signed) and exit 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.recorder.spool import spool_file

pytest.importorskip("torch")

ORIGIN = "serve.test.invalid/engine-0"
ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 180


def _setup(tmp: Path) -> list[str]:
    """A signing key and an API keys file; the serve arguments that use them."""
    runner = CliRunner()
    key = tmp / "signing.key"
    assert runner.invoke(app, ["keygen", ORIGIN, "--out", str(key)]).exit_code == 0
    keys = tmp / "api-keys.json"
    made = runner.invoke(
        app, ["client-key", "--tenant", "acme", "--principal", "svc", "--api-keys", str(keys)]
    )
    assert made.exit_code == 0, made.output
    return [
        "--key-file", str(key), "--api-keys", str(keys), "--witness-dir", str(tmp / "witness"),
        "--state-dir", str(tmp / "state"), "--port", "0",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _serve(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "auditlog", "serve", *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.postgres
def test_serve_while_the_database_is_down_exits_2_with_a_message(
    make_pg_database: Callable[[], AbstractContextManager[str]],
    set_pg_outage: Callable[..., None],
    tmp_path: Path,
) -> None:
    args = _setup(tmp_path)
    with make_pg_database() as db_url:
        set_pg_outage(db_url, down=True)
        try:
            proc = _serve(["--db", db_url, *args], tmp_path)
            out, _ = proc.communicate(timeout=STARTUP_TIMEOUT_S)
        finally:
            set_pg_outage(db_url, down=False)
    assert proc.returncode == 2, out
    assert "database does not answer" in out and "Traceback" not in out
    assert not (tmp_path / "witness").exists() and not (tmp_path / "state").exists()


def test_serve_refuses_a_spool_it_cannot_replay(tmp_path: Path) -> None:
    args = _setup(tmp_path)
    spool = spool_file(tmp_path / "state", ORIGIN)
    spool.parent.mkdir()
    spool.write_bytes(b'{"checkpoint": 1}\n')
    proc = _serve(["--db", str(tmp_path / "audit.db"), *args], tmp_path)
    out, _ = proc.communicate(timeout=STARTUP_TIMEOUT_S)
    assert proc.returncode == 2, out
    assert "cannot be replayed" in out and "Traceback" not in out
    assert spool.read_bytes() == b'{"checkpoint": 1}\n'  # kept for the operator


def test_sigterm_shuts_down_cleanly_with_exit_0(tmp_path: Path) -> None:
    args = _setup(tmp_path)
    db = tmp_path / "audit.db"
    proc = _serve(["--db", str(db), *args], tmp_path)
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if not line or "Application startup complete" in line:
            break
    assert "Application startup complete" in lines[-1], "".join(lines)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, "".join(lines) + out
    assert "Traceback" not in out
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()
    verified = CliRunner().invoke(app, ["verify", "--db", str(db), "--json"])
    # Nothing failed; an empty log with no --key proves nothing (docs/TRUST.md): exit 3.
    assert verified.exit_code == 3 and '"ok":true' in verified.output, verified.output


def test_auditor_api_sigterm_exits_0(tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "audit.db"
    assert runner.invoke(app, ["db", "upgrade", "--db", str(db)]).exit_code == 0
    key = tmp_path / "api.key"
    assert (
        runner.invoke(app, ["keygen", "api.test.invalid/access", "--out", str(key)]).exit_code == 0
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditlog", "api", "--db", str(db), "--signing-key", str(key),
         "--port", "0"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = [proc.stdout.readline()]
    while lines[-1] and "Application startup complete" not in lines[-1]:
        lines.append(proc.stdout.readline())
    assert "Application startup complete" in lines[-1], "".join(lines)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + out
    assert "Traceback" not in out
