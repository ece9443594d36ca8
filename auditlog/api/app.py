"""The auditor API application factory."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match

from auditlog.bundle.verify import parse_verifier_keys
from auditlog.errors import AuditlogError, ConfigurationError, FormatError, NotFoundError
from auditlog.ledger import DirectoryWitness
from auditlog.store.db import create_db_engine, upgrade
from auditlog.witnesses.state import OutsideAnchors

from .access import AccessLog, AccessLogUnavailable
from .console import install_console
from .deps import ApiState, AuditDep, KeyDep, record_invalid_input, status_of
from .routes import logs, protect, replay, requests, steps, tiles
from .settings import ApiSettings

__all__ = ["create_app"]

API_VERSION = "1"


def _known_path(route: BaseRoute, request: Request) -> bool:
    """Whether ``route`` serves the request's path with another method."""
    match, _ = route.matches(request.scope)
    return match is Match.PARTIAL


def _error(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"detail": detail})


def _no_access_record() -> JSONResponse:
    return _error(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "the access record of this read could not be written; nothing is returned",
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, minus the empty JSON body FastAPI documents next to the real one on
    routes that answer text/plain, text/html or a bundle."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for item in schema["paths"].values():
            for operation in item.values():
                content = operation.get("responses", {}).get("200", {}).get("content", {})
                if len(content) > 1 and content.get("application/json") == {"schema": {}}:
                    del content["application/json"]
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(settings: ApiSettings, *, engine: Engine | None = None) -> FastAPI:
    """Build the auditor API for ``settings`` (``engine``: reuse an open engine, e.g. in tests).

    Raises ConfigurationError for an unreadable signing key or a malformed trusted key.
    """
    state = _api_state(settings, engine)
    db = state.engine

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # One writer per log: refuse to start on an origin another writer owns.
        state.access_log.open()
        try:
            yield
        finally:
            state.access_log.close()
            if state.read_engine is not None:
                state.read_engine.dispose()
            if engine is None:
                db.dispose()

    app = FastAPI(
        title="auditlog auditor API",
        version=API_VERSION,
        description=(
            "Read access to per-request audit trails of LLM inference: search, trails, "
            "inclusion and consistency proofs, signed checkpoints, evidence bundles. Every "
            "read is itself recorded in the API's own access log before it is answered. Admins "
            "place and release legal holds and order erasures, each a signed record."
        ),
        lifespan=lifespan,
    )
    app.state.auditlog = state
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    # replay before requests: its ``.../replay`` route is more specific than the trail's
    # ``{request_id:path}``, for the 405 answers of other methods.
    routers = (
        replay.router,
        requests.router,
        logs.router,
        steps.router,
        tiles.router,
        protect.router,
    )
    for router in routers:
        app.include_router(router)
    install_console(app)
    _answer_unknown_paths(app, routers)
    _handle_errors(app)
    return app


def _api_state(settings: ApiSettings, engine: Engine | None) -> ApiState:
    """The API's state: trusted keys, signers and outside anchors checked before the database
    is migrated (when asked) or opened."""
    try:
        trusted = parse_verifier_keys(settings.api_trusted_keys)
    except FormatError as exc:
        raise ConfigurationError(f"AUDITLOG_API_TRUSTED_KEYS: {exc}") from exc
    signer, admin_signer = settings.load_signer(), settings.load_admin_signer()
    outside = OutsideAnchors.load(settings.witness_policy, settings.tsa_cert)
    if settings.api_migrate:  # after every check that can refuse: a refusal migrates nothing
        upgrade(engine or settings.db_url)
    db = engine or create_db_engine(settings.db_url)
    return ApiState(
        settings=settings,
        engine=db,
        access_log=AccessLog(
            engine=db,
            origin=settings.api_origin,
            signer=signer,
            witnesses=[DirectoryWitness(settings.api_witness_dir)]
            if settings.api_witness_dir is not None
            else [],
        ),
        trusted=trusted,
        admin_signer=admin_signer,
        read_engine=None
        if settings.api_read_db_url is None
        else create_db_engine(settings.api_read_db_url, read_only=True),
        outside=outside,
    )


def _answer_unknown_paths(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Any other path or method: 404, or 405 for a path one of ``routers`` serves."""

    @app.api_route(
        "/{path:path}",
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    def _unknown(path: str, request: Request, key: KeyDep, audit: AuditDep) -> None:
        """Any other path or method: 404 (or 405 for a known path), access-logged like every
        answer to a known caller (C18)."""
        with audit.reading():
            # As the router would: the first route (in registration order) serving the path.
            known = next(
                (r for router in routers for r in router.routes if _known_path(r, request)), None
            )
            allowed = sorted(getattr(known, "methods", None) or ())
            if allowed:  # the path exists, not with this method
                raise HTTPException(
                    status.HTTP_405_METHOD_NOT_ALLOWED,
                    "method not allowed",
                    headers={"Allow": ", ".join(allowed)},
                )
            raise NotFoundError(f"no endpoint /{path}")


def _handle_errors(app: FastAPI) -> None:
    """Errors as answers: an AuditlogError by its kind, invalid input 422 (access-logged), no
    access record 503."""

    @app.exception_handler(AuditlogError)
    async def _auditlog_error(_r: Request, exc: AuditlogError) -> JSONResponse:
        return _error(status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        try:  # access-logged like every answer to a known caller (C18)
            await run_in_threadpool(record_invalid_input, request)
        except AccessLogUnavailable:
            return _no_access_record()
        # FastAPI's own answer, ASCII-escaped: an input echoed back may hold a lone surrogate
        # (JSON bodies can carry one), which UTF-8 cannot encode.
        body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
        return Response(body, 422, media_type="application/json")

    @app.exception_handler(AccessLogUnavailable)
    async def _unavailable(_r: Request, _exc: AccessLogUnavailable) -> JSONResponse:
        return _no_access_record()
