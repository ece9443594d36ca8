"""De-interleave one physical batch step into per-request token runs.

Hand-written because it is the heart of the recorder and has a precise contract no library states:
a *stable* group-by on the request tags. Within a request, tokens keep the order the engine emitted
them; every token of the step lands in exactly one run (C11); runs come in the order of each
request's first token in the step, so the step manifest and the ``tokens`` records agree.
"""

from __future__ import annotations

from typing import NamedTuple

from auditlog.events import BatchStep, Provenance

__all__ = ["TokenRun", "deinterleave"]


class TokenRun(NamedTuple):
    """The tokens one request received in one physical step (a NamedTuple: immutable, and
    cheap to create on the recorder's hot path)."""

    request_id: str
    token_ids: tuple[int, ...]
    provenance: tuple[Provenance, ...]
    drafts: tuple[int, ...]


def deinterleave(step: BatchStep) -> list[TokenRun]:
    """Group ``step``'s flattened tokens by request id, stably.

    A request that appears in ``step.drafts`` but received no token (every draft rejected is not
    possible: a rejection always yields a recovered token, but an engine may report proposals for a
    request it then aborted) still gets a run, with no tokens, so its proposals are not lost.
    """
    token_ids: dict[str, list[int]] = {}
    provenance: dict[str, list[Provenance]] = {}
    for token_id, request_id, prov in zip(
        step.token_ids, step.request_ids, step.provenance, strict=True
    ):
        ids = token_ids.get(request_id)
        if ids is None:
            ids = token_ids[request_id] = []
            provenance[request_id] = []
        ids.append(token_id)
        provenance[request_id].append(prov)
    for request_id in step.drafts:
        if request_id not in token_ids:
            token_ids[request_id] = []
            provenance[request_id] = []
    return [
        TokenRun(
            request_id=request_id,
            token_ids=tuple(ids),
            provenance=tuple(provenance[request_id]),
            drafts=tuple(step.drafts.get(request_id, ())),
        )
        for request_id, ids in token_ids.items()
    ]
