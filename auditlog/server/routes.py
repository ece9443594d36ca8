"""HTTP routes: ``/v1/completions``, ``/v1/chat/completions``, ``/v1/models``."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from starlette.responses import Response

from .auth import Identity
from .formats import WireFormat
from .openai_errors import ApiError
from .prompts import (
    chat_prompt,
    chat_sampling_params,
    completion_prompt,
    completion_sampling_params,
)
from .request_ids import RequestIds
from .schemas import ChatRequest, CompletionRequest
from .service import InferenceService

__all__ = ["router"]


def get_service(request: Request) -> InferenceService:
    service: InferenceService | None = getattr(request.app.state, "service", None)
    if service is None:
        raise ApiError(503, "server is starting or stopping", type="service_unavailable")
    return service


ServiceDep = Annotated[InferenceService, Depends(get_service)]


def get_identity(
    service: ServiceDep, authorization: Annotated[str | None, Header()] = None
) -> Identity:
    return service.settings.api_keys.authenticate(authorization)


IdentityDep = Annotated[Identity, Depends(get_identity)]


async def get_request_id(
    request: Request,
    service: ServiceDep,
    identity: IdentityDep,
    x_request_id: Annotated[str | None, Header()] = None,
) -> str:
    """The trail's request id: the caller's (validated, unused) or a new one."""
    chosen = RequestIds.parse(x_request_id)
    request_id = chosen or RequestIds.generate()
    await service.request_ids.reserve(request_id, check_log=chosen is not None)
    request.state.request_id = request_id
    return request_id


RequestIdDep = Annotated[str, Depends(get_request_id)]

router = APIRouter(prefix="/v1", tags=["inference"])


def _check_model(service: InferenceService, model: str) -> None:
    if model != service.settings.model_name:
        raise ApiError(
            404, f"the model {model!r} does not exist", param="model", code="model_not_found"
        )


@router.post("/completions")
async def completions(
    body: CompletionRequest,
    request: Request,
    service: ServiceDep,
    identity: IdentityDep,
    request_id: RequestIdDep,
) -> Response:
    _check_model(service, body.model)
    params = completion_sampling_params(body)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await service.generate(
        request,
        request_id=request_id,
        identity=identity,
        prompt=completion_prompt(body),
        params=params,
        wire=WireFormat(
            chat=False,
            response_id=f"cmpl-{request_id}",
            model=body.model,
            include_usage=include_usage,
        ),
        stream=body.stream,
    )


@router.post("/chat/completions")
async def chat_completions(
    body: ChatRequest,
    request: Request,
    service: ServiceDep,
    identity: IdentityDep,
    request_id: RequestIdDep,
) -> Response:
    _check_model(service, body.model)
    params = chat_sampling_params(body)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await service.generate(
        request,
        request_id=request_id,
        identity=identity,
        prompt=chat_prompt(body.messages),
        params=params,
        wire=WireFormat(
            chat=True,
            response_id=f"chatcmpl-{request_id}",
            model=body.model,
            include_usage=include_usage,
        ),
        stream=body.stream,
    )


@router.get("/models")
async def list_models(service: ServiceDep, identity: IdentityDep) -> dict[str, object]:
    return {
        "object": "list",
        "data": [
            {
                "id": service.settings.model_name,
                "object": "model",
                "created": int(time.time()),
                "owned_by": "auditlog",
            }
        ],
    }
