"""Running an ASGI app under uvicorn for ``auditlog serve`` and ``auditlog api``.

SIGTERM and SIGINT shut the server down cleanly (open requests end, the recorder drains and signs
a final checkpoint); the command then exits 0. uvicorn on its own re-raises the signal after the
shutdown, which makes a clean stop look like a kill (exit 143). A server that does not start (a
port taken, a refused lifespan start-up) is a ConfigurationError (exit 2), not uvicorn's exit 3.
"""

from __future__ import annotations

import signal
from typing import Any

from auditlog.errors import ConfigurationError

__all__ = ["run_server"]


def _ignore(signum: int, frame: Any) -> None:
    """The handler uvicorn's re-raised SIGTERM meets once the shutdown has finished."""


def run_server(app: Any, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``app`` until a signal; return after a clean shutdown (exit 0)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level))
    previous = signal.signal(signal.SIGTERM, _ignore)
    try:
        server.run()
    except SystemExit:  # uvicorn exits 3 when it cannot bind or its lifespan start-up fails
        if server.started:
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise ConfigurationError(f"the server did not start on {host}:{port} (see the log above)")
