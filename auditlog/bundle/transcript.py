"""A request's transcript, rebuilt from its verified chain (pure; no I/O).

The transcript is what the user saw: the prompt (from the ``request.start`` payload), then every
generated token in order, each with its provenance code and physical step (from the ``tokens``
records: header ``prov``/``step``, payload ``token_ids``/``drafts``), then the outcome (from
``request.end``). Payloads that were erased or are encrypted are reported as unreadable, not
guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from auditlog.errors import FormatError

__all__ = ["DraftProposal", "Transcript", "TranscriptToken", "build_transcript", "decode_payload"]


@dataclass(frozen=True, slots=True)
class TranscriptToken:
    """One generated token: its position in the output, id, provenance code and origin."""

    index: int
    token_id: int | None  # None when the payload of its record is unreadable
    provenance: str
    step: int
    seq: int  # the tokens record that holds it
    ts: int


@dataclass(frozen=True, slots=True)
class DraftProposal:
    """The draft tokens proposed for the request in one step (accepted and rejected, C6)."""

    step: int
    seq: int
    token_ids: tuple[int, ...]


@dataclass(slots=True)
class Transcript:
    """Prompt, output tokens with provenance, draft proposals and outcome of one request."""

    request_id: str
    tenant: str | None = None
    principal: str | None = None
    model: str | None = None
    started_ts: int | None = None
    finished_ts: int | None = None
    finish_reason: str | None = None
    n_generated: int | None = None
    n_delivered: int | None = None
    prompt_text: str | None = None
    prompt_token_ids: list[int] | None = None
    tokens: list[TranscriptToken] = field(default_factory=list)
    drafts: list[DraftProposal] = field(default_factory=list)
    unreadable_payloads: list[int] = field(default_factory=list)  # seqs


def decode_payload(data: bytes | None) -> dict[str, Any] | None:
    """The JSON object in a stored payload, or None if it is absent or not plaintext JSON."""
    if data is None:
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None  # ciphertext (encrypted payload) or garbage: the digest check decides
    return obj if isinstance(obj, dict) else None


def _int_list(obj: Mapping[str, Any], name: str, seq: int) -> list[int]:
    value = obj.get(name, [])
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise FormatError(f"payload of record {seq}: {name!r} is not a list of integers")
    return list(value)


def build_transcript(
    request_id: str, chain: Sequence[tuple[Mapping[str, Any], bytes | None]]
) -> Transcript:
    """Rebuild the transcript from ``chain``: (parsed header, payload bytes) by ``req_seq``.

    The chain MUST already be verified (headers parsed, links and digests checked). Raises
    FormatError when a readable ``tokens`` payload disagrees with its header's count.
    """
    out = Transcript(request_id=request_id)
    for header, payload in chain:
        seq, kind, ts = header["seq"], header["kind"], header["ts"]
        body = decode_payload(payload)
        if header.get("payload") is not None and body is None:
            out.unreadable_payloads.append(seq)
        if kind == "request.start":
            out.tenant = header.get("tenant")
            out.principal = header.get("principal")
            target = header.get("target")
            out.model = target.get("name") if isinstance(target, dict) else None
            out.started_ts = ts
            if body is not None:
                text = body.get("prompt_text")
                out.prompt_text = text if isinstance(text, str) else None
                out.prompt_token_ids = _int_list(body, "prompt_token_ids", seq)
        elif kind == "tokens":
            prov: list[str] = header["prov"]
            token_ids: list[int | None] = [None] * len(prov)
            if body is not None:
                ids = _int_list(body, "token_ids", seq)
                if len(ids) != len(prov):
                    raise FormatError(
                        f"payload of record {seq} holds {len(ids)} tokens, header says {len(prov)}"
                    )
                token_ids = list(ids)
                drafts = _int_list(body, "drafts", seq)
                if drafts:
                    out.drafts.append(DraftProposal(header["step"], seq, tuple(drafts)))
            for token_id, code in zip(token_ids, prov, strict=True):
                out.tokens.append(
                    TranscriptToken(len(out.tokens), token_id, code, header["step"], seq, ts)
                )
        elif kind == "request.end":
            out.finished_ts = ts
            out.finish_reason = header.get("reason")
            out.n_generated = header.get("n_generated")
            out.n_delivered = header.get("n_delivered")
    return out
