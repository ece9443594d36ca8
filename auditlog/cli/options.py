"""Options every command shares, defined once: ``--db``, the tenant name, output files.

``--db`` means the same in every command: a SQLAlchemy URL (``sqlite:///<file>``,
``postgresql+psycopg://...``) or a SQLite file path, with ``AUDITLOG_DB_URL`` as the default. The
value is checked when the command line is parsed, before a command creates or opens anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from auditlog.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = [
    "DB_ENVVAR",
    "DbOption",
    "OptionalDbOption",
    "StateDirOption",
    "check_new_file",
    "database_url",
    "load_witness_policy",
    "open_store",
    "parse_db",
    "parse_tenant",
    "read_signer",
    "read_text_file",
    "refuse_foreign_database",
    "require_auditlog_database",
]

DB_ENVVAR = "AUDITLOG_DB_URL"
_DB_HELP = f"database: a SQLAlchemy URL or a SQLite file path (default: ${DB_ENVVAR})"


def database_url(value: str) -> str:
    """``value`` as a database URL: a URL is kept, a file path becomes ``sqlite:///<abs path>``.

    Raises ConfigurationError for an empty value, an unparseable URL or an unsupported backend.
    """
    text = value.strip()
    if not text:
        raise ConfigurationError("the database is empty: give a database URL or a SQLite file path")
    if "://" not in text:
        if "\x00" in text:
            raise ConfigurationError(f"not a file path: {value!r}")
        text = f"sqlite:///{Path(text).expanduser().resolve()}"
    from auditlog.store.db import normalize_url

    normalize_url(text)
    return text


def parse_db(value: str) -> str:
    """Typer parser of ``--db``: a usage error (exit 2) names what is wrong."""
    try:
        return database_url(value)
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc)) from None


DbOption = Annotated[str, typer.Option("--db", envvar=DB_ENVVAR, help=_DB_HELP, parser=parse_db)]
OptionalDbOption = Annotated[
    str | None, typer.Option("--db", envvar=DB_ENVVAR, help=_DB_HELP, parser=parse_db)
]


def parse_tenant(value: str) -> str:
    """Typer parser of a tenant name: the one rule of :mod:`auditlog.tenants`."""
    from auditlog.tenants import is_tenant_name, tenant_name_error

    if not is_tenant_name(value):
        raise typer.BadParameter(tenant_name_error(value))
    return value


def parse_state_dir(value: str) -> Path:
    """Typer parser of ``--state-dir``: refused when it names something that is not a directory
    (else the spool would fail only once the database is down)."""
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{value} is not a directory")
    return path


RECORDER_KINDS = ("thread", "process")  # auditlog.recorder.kinds.RecorderKind (not imported here)


def parse_recorder_kind(value: str) -> str:
    if value not in RECORDER_KINDS:
        raise typer.BadParameter(f"{value!r}: one of {', '.join(RECORDER_KINDS)}")
    return value


RecorderOption = Annotated[
    str,
    typer.Option(
        "--recorder",
        envvar="AUDITLOG_RECORDER",
        parser=parse_recorder_kind,
        help="where the recorder's writer runs: 'thread' (in this process, the default) or "
        "'process' (a child process; docs/PERFORMANCE.md, Recorder)",
    ),
]

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="AUDITLOG_STATE_DIR",
        parser=parse_state_dir,
        help="where a writer keeps its outage spool (default: $XDG_STATE_HOME/auditlog, "
        "else ~/.local/state/auditlog)",
    ),
]


def require_auditlog_database(url: str, *, writer: bool = True) -> None:
    """Raise ConfigurationError unless ``url`` is an existing auditlog database (for a ``writer``,
    at this version's schema; readers skip the migration check, which loads Alembic).

    Opens the database read-only: a missing SQLite file is never created, and a file that is not
    a SQLite database, a database of another application, or a server that does not answer is
    reported in one line.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from auditlog.store.db import ensure_schema_current, existing_tables

    try:
        tables = existing_tables(url)
        if not set(tables) >= _AUDITLOG_TABLES:
            if tables:
                raise ConfigurationError(
                    f"{_shown(url)} is not an auditlog database: it holds other tables "
                    f"({', '.join(tables[:5])}) and no auditlog schema"
                )
            raise ConfigurationError(
                f"{_shown(url)} holds no auditlog schema: run `auditlog db upgrade --db ...`"
            )
        if writer:
            ensure_schema_current(url)
    except SQLAlchemyError as exc:
        raise ConfigurationError(f"cannot open {_shown(url)}: {_first_line(exc)}") from None


_AUDITLOG_TABLES = {"alembic_version", "logs", "records"}


def refuse_foreign_database(url: str, *, yes: bool = False) -> None:
    """Raise ConfigurationError when ``url`` names an existing database that holds another
    application's tables and no auditlog schema (unless ``yes``): a writer adds its tables to
    such a database only when asked (``auditlog db upgrade --yes``). A missing SQLite file is
    fine (the writer creates it); nothing is created here."""
    from sqlalchemy.engine import make_url

    from auditlog.store.db import current_revision, existing_tables

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(str(parsed.database)).exists():
        return
    if yes or current_revision(url) is not None:
        return
    tables = existing_tables(url)
    if tables:
        raise ConfigurationError(
            f"the database holds tables of another application ({', '.join(tables[:5])}) and "
            "no auditlog schema: `auditlog db upgrade --yes` adds the audit tables to it"
        )


@contextmanager
def open_store(db: str, *, read_only: bool = False) -> Iterator[Engine]:
    """The audit store of ``db``, which must exist at this schema (nothing is created); closed
    so that a SQLite database is left as it was found (rollback-journal mode)."""
    from auditlog.store.db import close_engine, create_db_engine

    require_auditlog_database(db, writer=not read_only)
    engine = create_db_engine(db, read_only=read_only)
    try:
        yield engine
    finally:
        close_engine(engine)


def read_signer(path: Path, what: str = "signing key file") -> Any:
    """The :class:`~auditlog.ledger.Signer` whose private key string ``path`` holds."""
    from auditlog.ledger import Signer

    return Signer.from_key_string(read_text_file(path, what).strip())


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def read_text_file(path: Path, what: str) -> str:
    """The UTF-8 text of a small input file; ConfigurationError names ``what`` it should be."""
    try:
        return path.read_bytes().decode("utf-8")
    except IsADirectoryError:
        raise ConfigurationError(f"{what} {path} is a directory, not a file") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{what} {path} is not a text file (not UTF-8)") from None


def check_new_file(path: Path, *, force: bool) -> None:
    """Refuse to write ``path`` if it is a directory, or an existing file without ``force``."""
    if path.is_dir():
        raise ConfigurationError(f"{path} is a directory: give a file name to write")
    if path.exists() and not force:
        raise ConfigurationError(f"{path} exists: pass --force to overwrite it")
    if not path.parent.is_dir():
        raise ConfigurationError(f"directory {path.parent} does not exist")


def load_witness_policy(witness_key: list[str] | None, witness_policy: Path | None) -> Any:
    """The witness policy of ``--witness-key``/``--witness-policy``, or None when neither is
    given (the witness modules, and their HTTP client, load only when one is)."""
    if not witness_key and witness_policy is None:
        return None
    from auditlog.witnesses.audit import load_policy

    return load_policy(witness_key or [], witness_policy)
