"""`auditlog keygen` and `auditlog client-key`: keys are created safely and never overwritten."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.ledger import Signer, Verifier
from auditlog.server import ApiKeyTable


def test_keygen_writes_a_private_key_0600_and_prints_its_verifier_key(tmp_path: Path) -> None:
    out = tmp_path / "log.key"
    result = CliRunner().invoke(app, ["keygen", "example.com/log", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    signer = Signer.from_key_string(out.read_text().strip())
    verifier = Verifier.from_key_string(result.stdout.strip())
    assert signer.verifier_key == verifier.key_string
    again = CliRunner().invoke(app, ["keygen", "example.com/log", "--out", str(out)])
    assert again.exit_code != 0
    assert Signer.from_key_string(out.read_text().strip()).key_string == signer.key_string


def test_client_key_stores_only_the_hash(tmp_path: Path) -> None:
    keys = tmp_path / "api-keys.json"
    runner = CliRunner()
    first = runner.invoke(
        app, ["client-key", "--tenant", "acme", "--principal", "alice", "--api-keys", str(keys)]
    )
    second = runner.invoke(
        app, ["client-key", "--tenant", "globex", "--principal", "bob", "--api-keys", str(keys)]
    )
    assert first.exit_code == 0 and second.exit_code == 0
    token = first.stdout.strip()
    assert token not in keys.read_text()
    assert len(json.loads(keys.read_text())["keys"]) == 2
    identity = ApiKeyTable.from_file(keys).authenticate(f"Bearer {token}")
    assert (identity.tenant, identity.principal) == ("acme", "alice")
