"""Request bodies -> engine inputs: the chat template and the sampling parameters (C5).

Every parameter that decides the output is mapped onto ``SamplingParams`` and so recorded in the
request's ``request.start`` record; a request without a seed gets a random one, recorded too, so
that every sampled request can be replayed. Parameters the engine cannot honour are refused.
"""

from __future__ import annotations

import secrets

from auditlog.engine.sampler import MAX_SEED, SamplingParams
from auditlog.gateway.openai_errors import ApiError

from .schemas import ChatMessage, ChatRequest, CompletionRequest

__all__ = [
    "CHAT_STOP",
    "chat_prompt",
    "chat_sampling_params",
    "completion_prompt",
    "completion_sampling_params",
]

# The demo corpus shape: "Customer: ...\nAgent: ...\n" lines; an agent turn ends at its newline.
_ROLE_LABELS = {"user": "Customer", "assistant": "Agent", "system": "System", "developer": "System"}
_REPLY_PREFIX = "Agent: "
CHAT_STOP = "\n"
MAX_STOP_STRINGS = 4
MAX_TOKENS_LIMIT = 4096
DEFAULT_COMPLETION_MAX_TOKENS = 16  # the OpenAI default for /v1/completions
DEFAULT_CHAT_MAX_TOKENS = 128
MAX_TEMPERATURE = 2.0


def chat_prompt(messages: list[ChatMessage]) -> str:
    """``Customer: <user>\\nAgent: <assistant>\\n ... Agent: `` (the model continues the line)."""
    lines = [f"{_ROLE_LABELS[m.role]}: {m.text()}\n" for m in messages]
    return "".join(lines) + _REPLY_PREFIX


def completion_prompt(body: CompletionRequest) -> str | list[int]:
    prompt = body.prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) != 1:
            raise ApiError.bad_request(
                f"prompt: expected one prompt, got {len(prompt)} (batched prompts unsupported)",
                param="prompt",
            )
        return str(prompt[0])
    if isinstance(prompt, list):
        return [int(t) for t in prompt]
    return prompt


def completion_sampling_params(body: CompletionRequest) -> SamplingParams:
    if body.echo:
        raise _unsupported("echo")
    if body.logprobs is not None:
        raise _unsupported("logprobs")
    if body.best_of not in (None, 1):
        raise _unsupported("best_of")
    if body.suffix:
        raise _unsupported("suffix")
    return _sampling(body, body.max_tokens, DEFAULT_COMPLETION_MAX_TOKENS, extra_stop=())


def chat_sampling_params(body: ChatRequest) -> SamplingParams:
    if body.logprobs or body.top_logprobs:
        raise _unsupported("logprobs")
    if body.tools:
        raise _unsupported("tools")
    if body.response_format and body.response_format.get("type") != "text":
        raise _unsupported("response_format")
    max_tokens = (
        body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    )
    return _sampling(body, max_tokens, DEFAULT_CHAT_MAX_TOKENS, extra_stop=(CHAT_STOP,))


def _sampling(
    body: CompletionRequest | ChatRequest,
    max_tokens: int | None,
    default_max_tokens: int,
    *,
    extra_stop: tuple[str, ...],
) -> SamplingParams:
    if body.n != 1:
        raise ApiError.bad_request(f"n: only n=1 is supported, got {body.n}", param="n")
    if body.presence_penalty or body.frequency_penalty:
        raise _unsupported("presence_penalty" if body.presence_penalty else "frequency_penalty")
    if body.logit_bias:
        raise _unsupported("logit_bias")
    temperature = 1.0 if body.temperature is None else body.temperature
    if not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise _bad("temperature", f"expected 0 to {MAX_TEMPERATURE}, got {temperature!r}")
    top_p = 1.0 if body.top_p is None else body.top_p
    if not 0.0 < top_p <= 1.0:
        raise _bad("top_p", f"expected a number in (0, 1], got {top_p!r}")
    top_k = 0 if body.top_k in (None, -1) else body.top_k
    if top_k is None or top_k < 0:
        raise _bad("top_k", f"expected -1, 0 (off) or a positive integer, got {body.top_k!r}")
    n_max = default_max_tokens if max_tokens is None else max_tokens
    if not 1 <= n_max <= MAX_TOKENS_LIMIT:
        raise _bad("max_tokens", f"expected 1 to {MAX_TOKENS_LIMIT}, got {n_max!r}")
    seed = secrets.randbelow(MAX_SEED + 1) if body.seed is None else body.seed
    if not 0 <= seed <= MAX_SEED:
        raise _bad("seed", f"expected 0 to {MAX_SEED}, got {seed!r}")
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stops) > MAX_STOP_STRINGS or any(not s for s in stops):
        raise _bad("stop", f"expected up to {MAX_STOP_STRINGS} non-empty strings, got {stops!r}")
    stop = tuple(dict.fromkeys([*stops, *extra_stop]))
    params = SamplingParams(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        max_tokens=n_max,
        seed=seed,
        stop=stop,
        ignore_eos=body.ignore_eos,
    )
    params.validate()  # the engine's own rules, as a backstop (InvalidRequestError -> 400)
    return params


def _bad(param: str, detail: str) -> ApiError:
    return ApiError.bad_request(f"{param}: {detail}", param=param, code="invalid_value")


def _unsupported(param: str) -> ApiError:
    return ApiError.bad_request(
        f"{param} is not supported by this server", param=param, code="unsupported_parameter"
    )
