"""``create_app(settings)``: the OpenAI-compatible inference server with the recorder embedded.

Startup opens the recorder (migrating the database) and starts the engine thread; shutdown aborts
what still runs and closes the recorder, which signs a final checkpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from auditlog.gateway.openai_errors import install_error_handlers

from .limits import PayloadLimit
from .routes import router
from .service import InferenceService
from .settings import ServerSettings

__all__ = ["create_app"]


def create_app(settings: ServerSettings) -> FastAPI:
    """Build the app; nothing is opened until the ASGI lifespan starts."""
    settings.validate()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        service = await anyio.to_thread.run_sync(InferenceService.start, settings, loop)
        app.state.service = service
        try:
            yield
        finally:
            app.state.service = None
            await anyio.to_thread.run_sync(service.stop)

    app = FastAPI(title="auditlog inference server", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(router)
    # Bodies over the payload limit are refused before FastAPI reads them (server/limits.py).
    app.add_middleware(PayloadLimit, limit=settings.max_payload_bytes)
    return app
