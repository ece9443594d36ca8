"""A witness sink that keeps every checkpoint as its own file in a directory (C10).

Each accepted checkpoint note becomes a new file, published atomically and never overwritten:

    <slug>.<origin hash>.<size, 20 digits>.checkpoint

``slug`` is the origin with every character outside ``[A-Za-z0-9._-]`` replaced by ``_`` (at
most 64 characters), ``origin hash`` the first 8 hex digits of SHA-256(origin) (two origins with
the same slug never share files). The file is written to a temporary name opened with
``O_CREAT | O_EXCL``, fsynced, then hard-linked to its final name (``link`` fails if that exists:
no overwrite, no partial file) and the directory is fsynced.

A directory that an administrator of the database cannot write (another host, a WORM mount)
lets ``auditlog verify`` catch a database rolled back or rewritten wholesale.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from auditlog.errors import ConfigurationError, FormatError, VerificationError
from auditlog.ledger.checkpoint import parse_checkpoint
from auditlog.ledger.note import split_note

__all__ = ["DirectoryWitness"]

_SUFFIX = ".checkpoint"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_KEPT_NAME = re.compile(r"\A[A-Za-z0-9._-]{0,64}\.[0-9a-f]{8}\.[0-9]{20}\.checkpoint\Z")


def _origin_prefix(origin: str) -> str:
    slug = _UNSAFE.sub("_", origin)[:64]
    return f"{slug}.{hashlib.sha256(origin.encode()).hexdigest()[:8]}."


class DirectoryWitness:
    """Checkpoint notes as write-once files in ``path`` (created if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _file(self, origin: str, size: int) -> Path:
        return self.path / f"{_origin_prefix(origin)}{size:020d}{_SUFFIX}"

    def submit(self, origin: str, size: int, note: str) -> Path:
        """Keep ``note`` (the signed checkpoint of ``origin`` at ``size``); returns its file.

        Submitting the same note again is a no-op. A different note for the same origin and size
        is a split view: :class:`VerificationError`, and the first note stays.
        """
        text, _ = split_note(note)
        cp = parse_checkpoint(text)
        if cp.origin != origin or cp.size != size:
            raise FormatError(
                f"note is for {cp.origin!r} at size {cp.size}, not {origin!r} at size {size}"
            )
        data = note.encode()
        final = self._file(origin, size)
        if final.exists():
            return self._same_or_split(final, data, origin, size)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create witness directory {self.path}: {exc}") from exc
        tmp = self.path / f".{final.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, final)  # fails if final exists: never overwrites
            except FileExistsError:
                return self._same_or_split(final, data, origin, size)
        finally:
            tmp.unlink(missing_ok=True)
        self._fsync_dir()
        return final

    def _same_or_split(self, final: Path, data: bytes, origin: str, size: int) -> Path:
        if final.read_bytes() != data:
            raise VerificationError(
                f"split view: witness already holds a different checkpoint of {origin!r} at size "
                f"{size} ({final.name})"
            )
        return final

    def _fsync_dir(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def sizes(self, origin: str) -> list[int]:
        """Tree sizes of the checkpoints kept for ``origin``, ascending."""
        if not self.path.is_dir():
            return []
        prefix = _origin_prefix(origin)
        sizes = []
        for entry in os.listdir(self.path):
            if entry.startswith(prefix) and entry.endswith(_SUFFIX):
                digits = entry[len(prefix) : -len(_SUFFIX)]
                if len(digits) == 20 and digits.isdigit():
                    if not (self.path / entry).is_file():
                        raise FormatError(f"witness entry {self.path / entry} is not a file")
                    sizes.append(int(digits))
        return sorted(sizes)

    def origins(self) -> set[str]:
        """Every log origin the witness holds a checkpoint of (read from the notes themselves).

        Raises FormatError for an entry named ``*.checkpoint`` that is not a checkpoint note kept
        under its own name (a directory, a garbage file, a note filed under another name): the
        witness would otherwise vouch for a log that never existed. A file under a kept name whose
        content is damaged is left to the verification of its log (``witness.invalid``).
        """
        if not self.path.is_dir():
            return set()
        found = set()
        for entry in sorted(self.path.iterdir()):
            if entry.name.endswith(_SUFFIX) and not entry.name.startswith("."):
                try:
                    cp = parse_checkpoint(split_note(self._read(entry))[0])
                except FormatError as exc:
                    if entry.is_file() and _KEPT_NAME.match(entry.name):
                        continue  # reported when its log is verified
                    raise FormatError(f"witness file {entry} is not a checkpoint: {exc}") from None
                if self._file(cp.origin, cp.size).name != entry.name:
                    raise FormatError(
                        f"witness file {entry} holds the checkpoint of {cp.origin!r} at size "
                        f"{cp.size}, which this witness keeps as {self._file(cp.origin, cp.size)}"
                    )
                found.add(cp.origin)
        return found

    def _read(self, path: Path) -> str:
        """The note kept in ``path``; FormatError if it is not a readable text file."""
        if not path.is_file():
            raise FormatError(f"witness entry {path} is not a file")
        try:
            return path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"witness file {path} is not a checkpoint note (not UTF-8)") from None

    def path_of(self, origin: str, size: int) -> Path:
        """The file that keeps (or would keep) the note of ``origin`` at ``size``."""
        return self._file(origin, size)

    def get(self, origin: str, size: int) -> str | None:
        """The note kept for ``origin`` at ``size``, or None."""
        path = self._file(origin, size)
        return self._read(path) if path.exists() else None

    def latest(self, origin: str) -> str | None:
        """The kept note of ``origin`` with the largest tree size, or None."""
        sizes = self.sizes(origin)
        return self.get(origin, sizes[-1]) if sizes else None
