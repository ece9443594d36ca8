"""``auditlog api``: serve the auditor API with uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from auditlog.errors import ConfigurationError

__all__ = ["register"]


def api(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8700,
    db: Annotated[
        str | None, typer.Option("--db", help="database URL (default: AUDITLOG_DB_URL)")
    ] = None,
    origin: Annotated[
        str | None, typer.Option(help="access log origin (default: AUDITLOG_API_ORIGIN)")
    ] = None,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="access log private key file (default: AUDITLOG_API_SIGNING_KEY)"),
    ] = None,
    migrate: Annotated[bool, typer.Option(help="migrate the database to head first")] = False,
) -> None:
    """Serve the auditor API and its console at /console (one process: it is the single writer
    of its access log)."""
    import uvicorn

    from auditlog.api import ApiSettings, create_app

    overrides: dict[str, Any] = {"api_migrate": migrate}
    if db is not None:
        overrides["db_url"] = db
    if origin is not None:
        overrides["api_origin"] = origin
    if signing_key is not None:
        overrides["api_signing_key"] = signing_key
    try:
        settings = ApiSettings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(f"auditor API settings: {exc}") from None
    uvicorn.run(create_app(settings), host=host, port=port, workers=1)


def register(app: typer.Typer) -> None:
    """Add the ``api`` command to ``app``."""
    app.command("api")(api)
