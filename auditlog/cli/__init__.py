"""The ``auditlog`` command (Typer). One module per subcommand group; each has ``register(app)``.

Exit codes shared by every command: 0 success (or "intact"), 1 integrity failure, 2 usage or
configuration error. Every :class:`~auditlog.errors.AuditlogError` is caught here, in one place.
"""

from __future__ import annotations

import importlib
import sys

import typer

from auditlog.errors import AuditlogError, ConfigurationError, VerificationError

__all__ = ["app", "main"]

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
    "api_cmd",
    "keys_cmd",
    "bundle_cmd",
    "replay_cmd",
)

app = typer.Typer(
    name="auditlog",
    help="Tamper-evident per-request audit trails for LLM inference.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _name in _COMMAND_MODULES:
    importlib.import_module(f"auditlog.cli.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    from auditlog.logs import configure_logging

    configure_logging()
    try:
        app()
    except VerificationError as exc:
        typer.echo(f"auditlog: integrity failure: {exc}", err=True)
        sys.exit(EXIT_INTEGRITY)
    except (ConfigurationError, AuditlogError) as exc:
        typer.echo(f"auditlog: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
