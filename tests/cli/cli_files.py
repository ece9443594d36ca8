"""What a refused command may not touch: a snapshot of the files under some roots, and a fresh
working directory (shared by the bad-input tests of tests/cli)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["snapshot", "workdir"]


def snapshot(*roots: Path) -> dict[str, str]:
    """Every path under ``roots`` with a digest of its content (``dir`` for a directory)."""
    seen = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames:
                seen[os.path.join(dirpath, name)] = "dir"
            for name in filenames:
                path = os.path.join(dirpath, name)
                seen[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return seen


@contextmanager
def workdir() -> Iterator[Path]:
    """A fresh, empty working directory (relative default paths land here)."""
    before = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(before)
