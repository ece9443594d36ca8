"""The auditor console: server-rendered pages over the auditor API, under ``/console``.

Sign-in with an API key opens a session (see :mod:`.session`); every page calls the API's own
route functions with the signed-in key, so roles, tenant scopes and ``access`` records are the
API's (C17, C18, C19). No script, no front-end build: Jinja2 templates and one style sheet.
"""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["install_console"]


def install_console(app: FastAPI) -> None:
    """Serve the console on ``app`` (an app made by :func:`auditlog.api.create_app`)."""
    from .pages import ConsoleState
    from .routes_admin import router as admin_router
    from .routes_auth import router as auth_router
    from .routes_protect import router as protect_router
    from .routes_reads import router as reads_router
    from .session import SessionStore

    app.state.console = ConsoleState(sessions=SessionStore())
    for router in (auth_router, reads_router, admin_router, protect_router):
        app.include_router(router)
