"""HTTP routes: ``/v1/completions``, ``/v1/chat/completions``, ``/v1/models``."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from starlette.responses import Response

from auditlog.engine.sampler import SamplingParams
from auditlog.gateway.auth import Identity
from auditlog.gateway.openai_errors import ApiError
from auditlog.gateway.request_ids import RequestName
from auditlog.recorder.checks import check_texts

from .formats import WireFormat
from .prompts import (
    chat_prompt,
    chat_sampling_params,
    completion_prompt,
    completion_sampling_params,
)
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


def get_request_name(
    request: Request,
    service: ServiceDep,
    identity: IdentityDep,
    x_request_id: Annotated[str | None, Header()] = None,
) -> RequestName:
    """The request's names in the caller's tenant namespace (C19); validated, not yet reserved:
    the route reserves the trail id only once the body and model are valid."""
    name = service.request_ids.name(identity.tenant, x_request_id)
    request.state.request_id = name.caller_id
    return name


RequestNameDep = Annotated[RequestName, Depends(get_request_name)]


async def _reserve(request: Request, service: InferenceService, name: RequestName) -> None:
    """Claim the trail id (409 on a collision in the caller's own namespace)."""
    await service.request_ids.reserve(name)
    request.state.trail_id = name.trail_id


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
    name: RequestNameDep,
) -> Response:
    _check_model(service, body.model)
    params = completion_sampling_params(body)
    prompt = completion_prompt(body)
    return await _generate(request, service, identity, name, body, prompt, params, chat=False)


@router.post("/chat/completions")
async def chat_completions(
    body: ChatRequest,
    request: Request,
    service: ServiceDep,
    identity: IdentityDep,
    name: RequestNameDep,
) -> Response:
    _check_model(service, body.model)
    params = chat_sampling_params(body)
    prompt = chat_prompt(body.messages)
    return await _generate(request, service, identity, name, body, prompt, params, chat=True)


async def _generate(
    request: Request,
    service: InferenceService,
    identity: Identity,
    name: RequestName,
    body: CompletionRequest | ChatRequest,
    prompt: str | list[int],
    params: SamplingParams,
    *,
    chat: bool,
) -> Response:
    """Shared tail of both endpoints, once the body is validated: reserve the id, generate.

    A body with text that cannot be recorded exactly (a lone UTF-16 surrogate anywhere: prompt,
    messages, stop strings, user) is refused with 400 before anything is reserved (C23).
    """
    check_texts(body.model_dump(), "body")
    await _reserve(request, service, name)
    prefix = "chatcmpl" if chat else "cmpl"
    return await service.generate(
        request,
        name=name,
        identity=identity,
        prompt=prompt,
        params=params,
        wire=WireFormat(
            chat=chat,
            response_id=f"{prefix}-{name.caller_id}",
            model=body.model,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
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
