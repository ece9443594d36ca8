"""The ``auditlog`` command (Typer). One module per subcommand group; each has ``register(app)``.

Exit codes shared by every command: 0 success (or "intact"), 1 integrity failure, 2 usage or
configuration error. Errors are mapped to exit codes in one place, :class:`_AuditlogGroup`: an
:class:`~auditlog.errors.AuditlogError` (and a database driver or file system error met on the
way) prints one line ``auditlog: error: ...`` and exits 2, never a traceback.

Start-up is kept short: the command modules import nothing heavy (FastAPI, SQLAlchemy, torch) at
module level, so ``auditlog --help`` and ``auditlog --version`` load only Typer.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from auditlog.errors import AuditlogError, VerificationError

__all__ = ["EXIT_INTEGRITY", "EXIT_OK", "EXIT_USAGE", "app", "log_to_stderr", "main"]

EXIT_OK = 0
EXIT_INTEGRITY = 1
EXIT_USAGE = 2

_COMMAND_MODULES = (
    "demo_cmd",
    "verify_cmd",
    "db_cmd",
    "keygen_cmd",
    "bench_cmd",
    "serve_cmd",
    "client_key_cmd",
    "api_cmd",
    "keys_cmd",
    "bundle_cmd",
    "replay_cmd",
    "protect_cmd",
)


def _database_error(exc: BaseException) -> str | None:
    """A one-line description of a database driver error, or None if ``exc`` is not one.

    Only modules a command already loaded are looked at: SQLAlchemy's errors, and the DB-API
    errors of sqlite3 and psycopg that reach us unwrapped (raised while a connection is set up).
    """
    kinds = []
    for module, name in (("sqlalchemy.exc", "SQLAlchemyError"), ("sqlite3", "Error")):
        loaded = sys.modules.get(module)
        if loaded is not None:
            kinds.append(getattr(loaded, name))
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        kinds.append(psycopg.Error)
    if not isinstance(exc, tuple(kinds)):
        return None
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"database error: {text[0] if text else type(orig).__name__}"


_logging = {"configure": False}  # set by main(): the console script logs to stderr


def log_to_stderr() -> None:
    """Route structured logs to stderr, when run as the console script (under a test runner the
    test owns logging). Called by the commands that log (demo, serve, api), so that the others
    do not load structlog."""
    if _logging["configure"]:
        from auditlog.logs import configure_logging

        configure_logging()


class _AuditlogGroup(TyperGroup):
    """The root command group: the one place where errors become exit codes."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except VerificationError as exc:
            typer.echo(f"auditlog: integrity failure: {exc}", err=True)
            raise typer.Exit(EXIT_INTEGRITY) from None
        except AuditlogError as exc:
            typer.echo(f"auditlog: error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        except OSError as exc:
            typer.echo(f"auditlog: error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        except Exception as exc:
            message = _database_error(exc)
            if message is None:
                raise
            typer.echo(f"auditlog: error: {message}", err=True)
            raise typer.Exit(EXIT_USAGE) from None


app = typer.Typer(
    name="auditlog",
    cls=_AuditlogGroup,
    help="Tamper-evident per-request audit trails for LLM inference.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from auditlog import __version__

        typer.echo(f"auditlog {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Tamper-evident per-request audit trails for LLM inference."""


for _name in _COMMAND_MODULES:
    importlib.import_module(f"auditlog.cli.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    _logging["configure"] = True
    app()
