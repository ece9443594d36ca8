"""OpenAI-shaped error responses: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from auditlog.errors import InvalidRequestError, RecorderError, UnrecordableEventError
from auditlog.recorder.limits import PayloadTooLargeError
from auditlog.recorder.spool import is_outage

from .auth import AuthenticationError

__all__ = [
    "ApiError",
    "as_api_error",
    "database_unavailable",
    "error_body",
    "install_error_handlers",
]

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
SERVER_ERROR = "server_error"
UNAVAILABLE = "service_unavailable"
#: Seconds a caller is asked to wait before retrying while the database does not answer.
RETRY_AFTER_S = 5


class ApiError(Exception):
    """An error the server returns to the caller with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    @classmethod
    def bad_request(
        cls, message: str, *, param: str | None = None, code: str | None = None
    ) -> ApiError:
        return cls(400, message, param=param, code=code)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def database_unavailable() -> ApiError:
    """503 with ``Retry-After``: the audit database does not answer, so nothing was started."""
    return ApiError(
        503,
        "the audit database is unavailable; nothing was recorded for this request, retry later",
        type=UNAVAILABLE,
        code="database_unavailable",
        headers={"retry-after": str(RETRY_AFTER_S)},
    )


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _response(err: ApiError, request: Request | None = None) -> JSONResponse:
    headers = {**(_id_headers(request) or {}), **err.headers}
    return JSONResponse(err.body(), status_code=err.status, headers=headers or None)


def _id_headers(request: Request | None) -> dict[str, str] | None:
    """The caller's request id as sent, and the trail id once one was reserved (request_ids)."""
    if request is None:
        return None
    headers: dict[str, str] = {}
    caller_id = getattr(request.state, "request_id", None)
    trail_id = getattr(request.state, "trail_id", None)
    if caller_id:
        headers["x-request-id"] = caller_id
    if trail_id:
        headers["x-auditlog-request-id"] = trail_id
    return headers or None


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the OpenAI shape (400 for bad input, never FastAPI's 422)."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        return _response(as_api_error(exc), request)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return _response(ApiError.bad_request(_json_message(first)), request)
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "header")]
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg', 'invalid request')}" if param else "invalid request"
        return _response(ApiError.bad_request(message, param=param), request)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        detail = exc.detail if isinstance(exc, StarletteHTTPException) else "error"
        kind = INVALID_REQUEST if status < 500 else SERVER_ERROR
        return _response(ApiError(status, str(detail), type=kind), request)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if is_outage(exc):
            return _response(database_unavailable(), request)
        return _response(ApiError(500, "internal error", type=SERVER_ERROR), request)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(AuthenticationError, api_error)
    app.add_exception_handler(InvalidRequestError, api_error)
    app.add_exception_handler(RecorderError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _json_message(error: dict[str, Any]) -> str:
    """``request body is not valid JSON: <why> at line L column C`` from pydantic's error."""
    loc = error.get("loc", ())
    position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    why = (error.get("ctx") or {}).get("error") or "JSON decode error"
    where = f" (at character {position})" if position is not None else ""
    return f"request body is not valid JSON: {why}{where}"


def as_api_error(exc: Exception) -> ApiError:
    """The OpenAI-shaped error a caller gets for ``exc``."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AuthenticationError):
        return ApiError(401, str(exc), type=AUTHENTICATION, code="invalid_api_key",
                        headers={"www-authenticate": "Bearer"})  # fmt: skip
    if isinstance(exc, InvalidRequestError):
        return ApiError.bad_request(str(exc))
    if isinstance(exc, PayloadTooLargeError):  # over max_payload_bytes: nothing of it stored
        return ApiError(413, str(exc), code="request_too_large")
    if isinstance(exc, UnrecordableEventError):
        # The request cannot be recorded exactly, so it is not served (C23); others go on.
        return ApiError.bad_request(str(exc), code="unrecordable_request")
    if isinstance(exc, RecorderError):
        # Fail-closed (C21): no record, no answer.
        return ApiError(503, f"audit recorder unavailable: {exc}", type=UNAVAILABLE)
    return ApiError(500, "internal error", type=SERVER_ERROR)
