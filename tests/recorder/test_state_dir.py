"""Where a writer keeps its outage spool: an explicit state directory, never the working directory
(a writer restarted from another directory must find its spool, C22)."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditlog.recorder.spool import STATE_DIR_ENVVAR, default_state_dir, spool_file


def test_state_dir_setting_then_xdg_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(STATE_DIR_ENVVAR, raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "auditlog"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "auditlog"
    monkeypatch.setenv(STATE_DIR_ENVVAR, str(tmp_path / "explicit"))
    assert default_state_dir() == tmp_path / "explicit"
    monkeypatch.chdir(tmp_path / "..")
    assert default_state_dir() == tmp_path / "explicit"  # not relative to the working directory


def test_spool_file_is_one_per_origin_and_file_safe(tmp_path: Path) -> None:
    a = spool_file(tmp_path, "example.com/log-a")
    assert a == tmp_path / "spool-example.com_log-a.jsonl"
    assert a != spool_file(tmp_path, "example.com/log-b")
    assert spool_file(tmp_path, "../../etc/x").parent == tmp_path
