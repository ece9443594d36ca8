"""``auditlog demo``: ``--db`` takes a URL or a path, and a finished run leaves only its files
(the database without ``-wal``/``-shm``, the witness directory, the key file)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.ledger import Signer

pytest.importorskip("torch")


@pytest.mark.parametrize("db", ["sqlite:///evidence.db", "evidence.db"])
def test_demo_takes_a_url_or_a_path_and_leaves_only_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: str
) -> None:
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "state"
    result = CliRunner().invoke(
        app,
        ["demo", "--db", db, "--requests", "2", "--show", "0", "--state-dir", str(state)],
    )
    assert result.exit_code == 0, result.output
    assert "intact" in result.output
    assert sorted(os.listdir(tmp_path)) == [
        "auditlog-demo.key",
        "auditlog-demo.key.keyring",
        "evidence.db",
        "witness",
    ]
    key = Signer.from_key_string(Path("auditlog-demo.key").read_text().strip()).verifier_key
    verify = ["verify", "--db", "evidence.db", "--witness-dir", "witness", "--json"]
    again = CliRunner().invoke(app, [*verify, "--key", key])
    assert again.exit_code == 0, again.output
    # Without the key given out of band nothing is proven (docs/TRUST.md): exit 3, no failure.
    unkeyed = CliRunner().invoke(app, verify)
    assert unkeyed.exit_code == 3 and '"ok":true' in unkeyed.output, unkeyed.output
    assert sorted(os.listdir(tmp_path)) == [
        "auditlog-demo.key",
        "auditlog-demo.key.keyring",
        "evidence.db",
        "witness",
    ]
