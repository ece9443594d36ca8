"""``auditlog serve`` configured with witnesses and a TSA gets its checkpoints cosigned and
timestamped, with no code: only ``--witness-policy``, ``--tsa-url`` and ``--tsa-cert`` (C10).

The server runs as a real process; the witness is aics-witness, a third-party C2SP
tlog-witness server run from the test-only environment of ``scripts/witness_env.sh``; the TSA is
``openssl ts`` behind a local HTTP server. After a completion and a clean shutdown (SIGTERM),
``auditlog verify`` with the policy, the TSA certificate and ``--ask-witnesses`` proves the
database intact (0) and shows the trusted time; the adapters' environment configuration
(``MiddlewareConfig.from_env``) reads the same variables.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from tsa_env import LocalTsa, local_tsa
from typer.testing import CliRunner
from witness_env import StartWitnesses

from auditlog.cli import app
from auditlog.errors import ConfigurationError
from auditlog.integrations.settings import MiddlewareConfig
from auditlog.ledger import Signer
from auditlog.witnesses.settings import WitnessSettings

ORIGIN = "serve.test.invalid/witnessed"
ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 180


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[LocalTsa]:
    with local_tsa(tmp_path / "tsa") as running:
        yield running


def _keys(tmp: Path) -> tuple[Path, Path, str]:
    runner = CliRunner()
    key = tmp / "signing.key"
    assert runner.invoke(app, ["keygen", ORIGIN, "--out", str(key)]).exit_code == 0
    keys = tmp / "api-keys.json"
    made = runner.invoke(
        app, ["client-key", "--tenant", "acme", "--principal", "svc", "--api-keys", str(keys)]
    )
    assert made.exit_code == 0, made.output
    return key, keys, made.stdout.strip().splitlines()[-1]


def _read_until_started(proc: subprocess.Popen[str]) -> tuple[str, list[str]]:
    assert proc.stdout is not None
    lines: list[str] = []
    url = ""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if found := re.search(r"Uvicorn running on (http://\S+)", line):
            url = found.group(1)
        if not line or url:  # uvicorn names its port once the application has started
            break
    assert url and any("Application startup complete" in x for x in lines), "".join(lines)
    return url, lines


def test_serve_gets_checkpoints_cosigned_and_timestamped(
    db_url: str, tmp_path: Path, witnesses: StartWitnesses, tsa: LocalTsa
) -> None:
    pytest.importorskip("torch")
    key, api_keys, client_key = _keys(tmp_path)
    verifier_key = Signer.from_key_string(key.read_text().strip()).verifier_key
    ws = witnesses(2, {ORIGIN: verifier_key})
    policy = tmp_path / "policy.txt"
    policy.write_text(
        "\n".join(
            [
                *(f"witness w{i} {w.vkey} {w.url}" for i, w in enumerate(ws)),
                "group g all w0 w1",
                "quorum g",
            ]
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditlog", "serve", "--db", db_url, "--key-file", str(key),
         "--api-keys", str(api_keys), "--witness-dir", str(tmp_path / "witness"),
         "--state-dir", str(tmp_path / "state"), "--port", "0",
         "--witness-policy", str(policy), "--tsa-url", tsa.url, "--tsa-cert", str(tsa.certs_pem)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url, lines = _read_until_started(proc)
        answer = httpx.post(
            f"{url}/v1/completions",
            json={"model": "auditlog-demo", "prompt": "witnessed", "max_tokens": 4},
            headers={"Authorization": f"Bearer {client_key}"},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, "".join(lines) + out
    assert "witness policy" in "".join(lines)

    result = CliRunner().invoke(
        app,
        ["verify", "--db", db_url, "--key", verifier_key, "--witness-policy", str(policy),
         "--tsa-cert", str(tsa.certs_pem), "--ask-witnesses", "--json"],
    )  # fmt: skip
    report = orjson.loads(result.stdout)
    assert result.exit_code == 0, report
    assert report["witness_findings"] == [] and ORIGIN in report["trusted_time"]


def test_adapters_read_the_same_settings(tmp_path: Path) -> None:
    """MiddlewareConfig.from_env reads AUDITLOG_WITNESS_POLICY/TSA_URL/TSA_CERT into the same
    WitnessSettings; an unreadable policy, one without witness URLs, or a certificate without a
    URL is a ConfigurationError naming it at configuration, before anything is opened; nothing
    configured sends nothing."""
    key = tmp_path / "signing.key"
    key.write_text(Signer.generate(ORIGIN).key_string)
    base = {"AUDITLOG_DB_URL": f"sqlite:///{tmp_path / 'a.db'}", "AUDITLOG_KEY_FILE": str(key)}
    env = {**base, "AUDITLOG_WITNESS_POLICY": str(tmp_path / "p"), "AUDITLOG_TSA_URL": "http://t"}
    with pytest.raises(ConfigurationError, match="cannot read witness policy"):
        MiddlewareConfig.from_env(env)
    (tmp_path / "p").write_text(f"witness w0 {_a_witness_key()}\nquorum w0\n")
    with pytest.raises(ConfigurationError, match="no witness has a URL"):
        MiddlewareConfig.from_env(env)
    (tmp_path / "p").write_text(f"witness w0 {_a_witness_key()} http://127.0.0.1:9\nquorum w0\n")
    config = MiddlewareConfig.from_env(env)
    assert config.anchors == WitnessSettings(
        policy_file=tmp_path / "p", tsa_url="http://t", tsa_cert=None
    )
    senders = config.anchors.open_senders(base["AUDITLOG_DB_URL"])
    assert [type(s).__name__ for s in senders] == ["WitnessPool", "Timestamper"]
    with pytest.raises(ConfigurationError, match="without a TSA URL"):
        WitnessSettings(tsa_cert=tmp_path / "c").check()
    plain = MiddlewareConfig.from_env(base).anchors
    assert not plain.enabled and plain.open_senders("sqlite://") == []


def _a_witness_key() -> str:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from auditlog.ledger.cosignature import COSIGNATURE_TYPE, cosignature_key_id

    public = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    name = "witness.test/w0"
    b64 = base64.b64encode(COSIGNATURE_TYPE + public).decode()
    return f"{name}+{cosignature_key_id(name, public).hex()}+{b64}"


def test_serve_refuses_a_bad_witness_policy(tmp_path: Path) -> None:
    """A policy file that does not parse: exit 2, one line, before anything starts."""
    pytest.importorskip("torch")
    key, api_keys, _ = _keys(tmp_path)
    policy = tmp_path / "policy.txt"
    policy.write_text("witness w0 not-a-key http://127.0.0.1:1\nquorum w0\n")
    result = subprocess.run(
        [sys.executable, "-m", "auditlog", "serve", "--db", str(tmp_path / "a.db"),
         "--key-file", str(key), "--api-keys", str(api_keys), "--witness-policy", str(policy),
         "--state-dir", str(tmp_path / "state")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "bad witness policy" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "a.db").exists()
