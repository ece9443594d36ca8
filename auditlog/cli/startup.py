"""What a writing command (``demo``, ``serve``, ``api --migrate``) checks before it creates
anything, and how a refused start-up takes back exactly what it created.

A refused start creates or changes nothing: every check that can refuse runs first. The witness
check (C10) runs before the database is created or migrated: a database that does not exist
yet, or was never migrated, holds an empty log, and a witness that holds a checkpoint of the
log refuses it just as it would refuse the created one. What can only fail once the database
exists (a spool that cannot be replayed, a port already taken) is covered by
:class:`NewPaths`: the files and directories this run created are removed again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from auditlog.errors import ConfigurationError

__all__ = [
    "NewPaths",
    "check_device",
    "check_witnesses_first",
    "is_fresh_database",
    "require_engine",
    "sqlite_files",
]

#: The files SQLite keeps next to a database file while it is open (or after a crash).
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def require_engine(command: str) -> Any:
    """The engine class; without the engine extra, ConfigurationError says that ``command``
    (as the message names it: "serve", "the demo") needs it."""
    try:
        from auditlog.engine import LLMEngine
    except ImportError as exc:
        raise ConfigurationError(
            f"{command} needs the engine extra: pip install 'auditlog[engine]' ({exc})"
        ) from exc
    return LLMEngine


def check_device(device: str) -> None:
    """Raise ConfigurationError unless ``device`` names a torch device this machine has (a
    tensor is made there): ``--device`` is checked before anything is created."""
    import torch

    try:
        torch.empty(0, device=torch.device(device))
    except (RuntimeError, AssertionError, ValueError) as exc:
        lines = str(exc).strip().splitlines()
        raise ConfigurationError(
            f"--device {device!r} cannot be used here: {lines[0] if lines else type(exc).__name__}"
        ) from None


def sqlite_files(url: str) -> list[Path]:
    """The database file of a SQLite ``url`` and its side files; none for another backend or
    an in-memory database."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return []
    return [Path(name), *(Path(name + suffix) for suffix in _SQLITE_SIDE_FILES)]


def is_fresh_database(url: str) -> bool:
    """True when ``url`` holds no auditlog schema yet: a SQLite file that does not exist, or a
    database never migrated. Opens an existing database read-only; creates nothing."""
    from auditlog.store.db import current_revision

    files = sqlite_files(url)
    if files and not files[0].exists():
        return True
    return current_revision(url) is None


def check_witnesses_first(url: str, origin: str, witnesses: Sequence[Any]) -> bool:
    """Refuse (:class:`~auditlog.errors.LogRolledBackError`) a log that the witnesses have seen
    larger or different, before the database is created or migrated (read only); True when it
    was checked.

    A fresh database holds an empty log; one at this version's schema is read as it is; one at
    an older schema is not checked here (False): check it once it is migrated."""
    from auditlog.recorder.recovery import check_against_witnesses, check_database, witness_notes
    from auditlog.store import close_engine, create_db_engine
    from auditlog.store.db import current_revision, head_revision

    if is_fresh_database(url):
        check_against_witnesses(origin, 0, None, witness_notes(origin, witnesses).notes)
        return True
    if current_revision(url) != head_revision():
        return False
    engine = create_db_engine(url)
    try:
        check_database(engine, origin, witnesses)
    finally:
        close_engine(engine)
    return True


class NewPaths:
    """The paths a start-up may create, remembered while they do not exist yet: after a refusal
    :meth:`remove` deletes those that exist now (files; directories only while empty), and
    nothing that was there before."""

    def __init__(self, *paths: Path) -> None:
        self._new = [p for p in paths if not p.exists() and not p.is_symlink()]

    def remove(self) -> None:
        """Delete the remembered paths that exist now, the last one first."""
        for path in reversed(self._new):
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()  # only an empty directory: it holds nothing of anyone's
                elif path.exists() or path.is_symlink():
                    path.unlink()
            except OSError:
                pass  # a directory something was written into stays

    @contextmanager
    def removed_on_error(self) -> Iterator[NewPaths]:
        """Run the block; on an exception remove what it created, then re-raise."""
        try:
            yield self
        except BaseException:
            self.remove()
            raise
