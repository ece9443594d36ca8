"""Third-party transparency-log tools run as real subprocesses on 127.0.0.1 (test-only).

aics-witness (a C2SP tlog-witness server), aics-tlog and tlog-scales live in their own virtual
environment, built by ``scripts/witness_env.sh``: aics-witness and aics-tlog declare Python >= 3.12
but run on 3.11, so that script installs them with ``--ignore-requires-python``; they never enter
auditlog's environment. The tests find it at ``$AUDITLOG_WITNESS_VENV``, else ``.witness-venv`` in
the repository root, and skip with that reason when it is absent, except under CI (``CI`` set),
where a missing environment fails the test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

ROOT = Path(__file__).resolve().parents[2]


def witness_python() -> Path:
    """The test environment's interpreter, or skip (fail under CI) when it is not built."""
    venv = Path(os.environ.get("AUDITLOG_WITNESS_VENV") or ROOT / ".witness-venv")
    python = venv / "bin" / "python"
    if not python.exists():
        reason = (
            f"third-party witness environment not found at {venv}: "
            "build it with scripts/witness_env.sh (or set AUDITLOG_WITNESS_VENV)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningWitness:
    """One aics-witness process: its cosigner name, verifier key and base URL."""

    name: str
    vkey: str
    url: str
    process: subprocess.Popen[bytes]
    log_file: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_witness(directory: Path, name: str, logs: dict[str, str]) -> RunningWitness:
    """Initialise an aics-witness in ``directory`` trusting ``logs`` (origin -> log verifier
    key), serve it on a free 127.0.0.1 port and wait until it answers."""
    python = witness_python()
    directory.mkdir(parents=True)
    config = directory / "witness.json"
    port = free_port()
    cli = [str(python), "-m", "aics_witness"]
    init = subprocess.run(
        [*cli, "init", "--config", str(config), "--name", name, "--listen", f"127.0.0.1:{port}"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    vkey = init.stdout.decode().strip().splitlines()[-1]
    for origin, log_vkey in logs.items():
        subprocess.run(
            [*cli, "add-log", "--config", str(config), "--origin", origin, "--vkey", log_vkey],
            capture_output=True,
            check=True,
            timeout=60,
        )
    log_file = directory / "serve.log"
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            [*cli, "serve", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    witness = RunningWitness(name, vkey, f"http://127.0.0.1:{port}", process, log_file)
    _wait_healthy(witness)
    return witness


def _wait_healthy(witness: RunningWitness, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if witness.process.poll() is not None:
            raise RuntimeError(f"witness exited: {witness.log_file.read_text()}")
        try:
            with urllib.request.urlopen(f"{witness.url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    witness.stop()
    raise RuntimeError(f"witness did not start: {witness.log_file.read_text()}")


#: ``witnesses(n, {origin: log verifier key})``: the fixture that starts n witnesses.
StartWitnesses = Callable[[int, dict[str, str]], "list[RunningWitness]"]


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Run an ASGI app under uvicorn on 127.0.0.1 (ephemeral port); yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="auto")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-tiles", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(60)
