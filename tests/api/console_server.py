"""A real ``auditlog api`` process on 127.0.0.1 over a store filled by the real recorder, for
the console's browser tests; and the rule that decides whether a browser is available."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from api_helpers import ADMIN_ORIGIN, API_ORIGIN, ENGINE_ORIGIN, fixed_signer, record_traffic

from auditlog.api import Role
from auditlog.api.keys import create_key
from auditlog.ledger import Signer
from auditlog.store.db import create_db_engine
from auditlog.synthetic import Truth

CHROMIUM = Path("/usr/bin/chromium")
STARTUP_TIMEOUT_S = 60.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def chromium_or_skip() -> Path:
    """Debian's Chromium and the ``playwright`` package, or skip with the reason; under CI=true
    a missing browser is a failure, so that CI never passes without the browser tests."""
    reasons = []
    if not CHROMIUM.exists():
        reasons.append(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reasons.append("the playwright package is missing (pip install playwright)")
    if reasons:
        message = "browser tests need " + "; ".join(reasons)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true, so this is a failure")
        pytest.skip(message)
    return CHROMIUM


@dataclass
class ConsoleServer:
    base_url: str
    db_url: str
    engine_signer: Signer
    api_signer: Signer
    truth: dict[str, Truth]
    tokens: dict[str, str]
    key_ids: dict[str, str]

    def request_of(self, tenant: str) -> str:
        return min(r for r, t in self.truth.items() if t.tenant == tenant)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"auditlog api exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"auditlog api did not answer {url} within {STARTUP_TIMEOUT_S} s")


@contextmanager
def console_server(
    db_url: str, tmp_path: Path, *, n_requests: int = 12, sealed: bool = False
) -> Iterator[ConsoleServer]:
    """Record traffic, issue keys, run ``python -m auditlog api`` on a free port. ``sealed``:
    payloads sealed under a keyring the API holds (C16); the API always has an administrative
    key (origin ``ADMIN_ORIGIN``) for holds and erasures."""
    engine_signer, api_signer = fixed_signer(ENGINE_ORIGIN), fixed_signer(API_ORIGIN)
    key_provider, keyring_env = None, {}
    if sealed:
        from auditlog.crypto import LocalKeyring, create_keyring

        keyring = create_keyring(tmp_path / "keyring.json")
        key_provider = LocalKeyring.load(keyring)
        keyring_env = {"AUDITLOG_API_KEYRING": str(keyring)}
    synthetic = record_traffic(
        db_url,
        engine_signer,
        tmp_path / "spool.jsonl",
        n_requests=n_requests,
        key_provider=key_provider,
    )
    tokens: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    engine = create_db_engine(db_url)
    with engine.begin() as conn:
        for who, role, tenants in (
            ("admin", Role.ADMIN, []),
            ("operator", Role.OPERATOR, []),
            ("auditor0", Role.AUDITOR, ["tenant-0"]),
            ("auditor1", Role.AUDITOR, ["tenant-1"]),
        ):
            issued = create_key(conn, role=role, tenants=tenants, label=f"{who} (test)")
            tokens[who], key_ids[who] = issued.token, issued.key.id
    engine.dispose()
    key_file = tmp_path / "api.key"
    key_file.write_text(api_signer.key_string + "\n")
    admin_key_file = tmp_path / "admin.key"
    admin_key_file.write_text(fixed_signer(ADMIN_ORIGIN).key_string + "\n")
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        "AUDITLOG_API_TRUSTED_KEYS": orjson.dumps([engine_signer.verifier_key]).decode(),
        **keyring_env,
    }
    command = [sys.executable, "-m", "auditlog", "api", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--db", db_url, "--origin", API_ORIGIN, "--signing-key", str(key_file)]
    command += ["--admin-signing-key", str(admin_key_file)]
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, f"{base_url}/console/sign-in")
        yield ConsoleServer(
            base_url=base_url,
            db_url=db_url,
            engine_signer=engine_signer,
            api_signer=api_signer,
            truth=synthetic.truth,
            tokens=tokens,
            key_ids=key_ids,
        )
    except RuntimeError:
        log.flush()
        sys.stderr.write((tmp_path / "api.log").read_text(errors="replace"))
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def screenshot_dir(tmp_path: Path) -> Path:
    """Where the browser tests save their screenshots (``AUDITLOG_CONSOLE_SCREENSHOTS`` or a
    folder of the test's tmp dir); kept as test artifacts."""
    configured = os.environ.get("AUDITLOG_CONSOLE_SCREENSHOTS")
    path = Path(configured) if configured else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["ConsoleServer", "chromium_or_skip", "console_server", "screenshot_dir"]
