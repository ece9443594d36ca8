"""The ``RequestStarted`` of an audited call (``asgi.AuditMiddleware``): the input the app runs
(``prompt`` of a completion, ``messages`` of a chat; ``asgi_policy.recorded_input``), every other
body field as parameters (C5; ``openai_wire.json_safe``), ``tokenization``, ``path``, the query
string if any, the caller's ``x_request_id`` and ``input_form``; its "tokens" are the UTF-8 bytes
of the text."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from auditlog.events import ModelRef, RequestStarted
from auditlog.gateway.auth import Identity
from auditlog.gateway.openai_wire import TOKENIZATION, json_safe
from auditlog.gateway.request_ids import REQUEST_ID_HEADER

from .asgi_policy import recorded_input

__all__ = ["ENGINE_LABEL", "model_ref", "started_event"]

ENGINE_LABEL = "auditlog-asgi-middleware/0.3"


def model_ref(model_refs: Mapping[str, ModelRef], model: Any) -> ModelRef:
    """The configured reference of the body's ``model`` (an unknown one: name only)."""
    name = model if isinstance(model, str) else ""
    return model_refs.get(name) or ModelRef(
        name=name, weights_sha256="", tokenizer_sha256="", architecture="unknown"
    )


def started_event(
    request_id: str, identity: Identity, headers: Mapping[str, str], path: str,
    query: str, body: dict[str, Any], target: ModelRef,
) -> RequestStarted:  # fmt: skip
    """The start of the trail of a checked ``body`` posted to ``path``."""
    used, text, form = recorded_input(body, path)
    params = {k: json_safe(v) for k, v in body.items() if k != used}
    params |= {"tokenization": TOKENIZATION, "path": path, "input_form": form}
    if query:
        params["query_string"] = query
    if headers.get(REQUEST_ID_HEADER):
        params["x_request_id"] = headers[REQUEST_ID_HEADER]
    return RequestStarted(
        request_id=request_id, tenant=identity.tenant, principal=identity.principal,
        prompt_token_ids=tuple(text.encode("utf-8")), prompt_text=text,
        params=params, target=target, draft=None,
        ts=time.time_ns(), engine=ENGINE_LABEL, client=identity.client,
    )  # fmt: skip
