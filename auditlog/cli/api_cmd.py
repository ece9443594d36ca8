"""``auditlog api``: serve the auditor API with uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from auditlog.errors import ConfigurationError

from .options import OptionalDbOption, require_auditlog_database
from .startup import NewPaths, sqlite_files

__all__ = ["register"]


def api(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=0, max=65535)] = 8700,
    db: OptionalDbOption = None,
    origin: Annotated[
        str | None, typer.Option(help="access log origin (default: AUDITLOG_API_ORIGIN)")
    ] = None,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="access log private key file (default: AUDITLOG_API_SIGNING_KEY)"),
    ] = None,
    admin_signing_key: Annotated[
        Path | None,
        typer.Option(
            help="private key file of the administrative log of holds and erasures placed "
            "through the API (default: AUDITLOG_API_ADMIN_SIGNING_KEY; without one they answer "
            "503)"
        ),
    ] = None,
    migrate: Annotated[bool, typer.Option(help="migrate the database to head first")] = False,
) -> None:
    """Serve the auditor API and its console at /console (one process: it is the single writer
    of its access log)."""
    from auditlog.cli import log_to_stderr

    log_to_stderr()
    overrides: dict[str, Any] = {"api_migrate": migrate}
    if db is not None:
        overrides["db_url"] = db
    if origin is not None:
        overrides["api_origin"] = origin
    if signing_key is not None:
        overrides["api_signing_key"] = signing_key
    if admin_signing_key is not None:
        overrides["api_admin_signing_key"] = admin_signing_key
    settings = load_api_settings(**overrides)
    settings.load_signer()  # a missing or malformed key fails here, before anything is opened
    settings.load_admin_signer()
    if not migrate:
        require_auditlog_database(settings.db_url)

    from auditlog.api import create_app

    from .serving import run_server

    # With --migrate a new SQLite file is created; a server that does not start removes it.
    created = NewPaths(*sqlite_files(settings.db_url)) if migrate else NewPaths()
    try:
        run_server(create_app(settings), host=host, port=port)
    except ConfigurationError:  # refused before it served anything (a port taken)
        created.remove()
        raise


def load_api_settings(**overrides: Any) -> Any:
    """:class:`~auditlog.api.ApiSettings` from the environment and ``overrides``; every bad value
    (a missing variable, ``AUDITLOG_API_TRUSTED_KEYS`` that is not a JSON list) is one
    ConfigurationError naming the variable."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from auditlog.api import ApiSettings

    from .options import database_url

    try:
        settings = ApiSettings(**overrides)
    except SettingsError as exc:
        raise ConfigurationError(
            f"auditor API settings: {exc} (list settings such as AUDITLOG_API_TRUSTED_KEYS are "
            'JSON arrays, e.g. ["name+hexid+base64"])'
        ) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"AUDITLOG_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigurationError(f"auditor API settings: {problems}") from None
    settings.db_url = database_url(settings.db_url)
    return settings


def register(app: typer.Typer) -> None:
    """Add the ``api`` command to ``app``."""
    app.command("api")(api)
