"""Directory witness: write-once checkpoint files, split views refused (C10)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from auditlog.errors import FormatError, VerificationError
from auditlog.ledger.checkpoint import Checkpoint, sign_checkpoint
from auditlog.ledger.note import Signer
from auditlog.ledger.witness import DirectoryWitness

ORIGIN = "log.example/witness test"
SIGNER = Signer(name="log.example", seed=b"\x01" * 32)


def _note(size: int, fill: int = 0, origin: str = ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin=origin, size=size, root=bytes([fill]) * 32), [SIGNER])


def test_each_checkpoint_is_a_new_file_and_latest_is_by_size(tmp_path: Path) -> None:
    witness = DirectoryWitness(tmp_path / "w")
    assert witness.latest(ORIGIN) is None
    paths = [witness.submit(ORIGIN, size, _note(size)) for size in (10, 200, 30)]
    assert len(set(paths)) == 3 and all(
        p.read_text() == _note(s) for p, s in zip(paths, (10, 200, 30), strict=True)
    )
    assert paths[0].name.endswith(".00000000000000000010.checkpoint")
    assert "/" not in paths[0].name and " " not in paths[0].name
    assert witness.sizes(ORIGIN) == [10, 30, 200]
    assert witness.latest(ORIGIN) == _note(200)
    assert witness.latest("another/origin") is None
    assert not [p for p in (tmp_path / "w").iterdir() if p.name.endswith(".tmp")]


def test_same_note_twice_is_idempotent(tmp_path: Path) -> None:
    witness = DirectoryWitness(tmp_path)
    first = witness.submit(ORIGIN, 5, _note(5))
    mtime = first.stat().st_mtime_ns
    assert witness.submit(ORIGIN, 5, _note(5)) == first
    assert first.stat().st_mtime_ns == mtime


def test_different_note_same_size_is_a_split_view(tmp_path: Path) -> None:
    witness = DirectoryWitness(tmp_path)
    witness.submit(ORIGIN, 5, _note(5, fill=1))
    with pytest.raises(VerificationError, match="split view"):
        witness.submit(ORIGIN, 5, _note(5, fill=2))
    assert witness.latest(ORIGIN) == _note(5, fill=1)


def test_origins_with_the_same_slug_do_not_collide(tmp_path: Path) -> None:
    witness = DirectoryWitness(tmp_path)
    witness.submit("a/b", 1, _note(1, origin="a/b"))
    witness.submit("a_b", 1, _note(1, fill=9, origin="a_b"))
    assert witness.latest("a/b") == _note(1, origin="a/b")
    assert witness.latest("a_b") == _note(1, fill=9, origin="a_b")


def test_note_must_match_origin_and_size(tmp_path: Path) -> None:
    witness = DirectoryWitness(tmp_path)
    with pytest.raises(FormatError, match=r"not 'log\.example/witness test' at size 6"):
        witness.submit(ORIGIN, 6, _note(5))


def test_files_are_read_only(tmp_path: Path) -> None:
    path = DirectoryWitness(tmp_path).submit(ORIGIN, 3, _note(3))
    assert not os.stat(path).st_mode & 0o222
