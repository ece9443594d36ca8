"""Response models of the auditor API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "CheckpointPublic",
    "ConsistencyProofPublic",
    "ErrorPublic",
    "InclusionProofPublic",
    "LogPublic",
    "ProofsPublic",
    "RecordPublic",
    "RequestPage",
    "RequestSummary",
    "StepManifestPublic",
    "StepPage",
    "TokenPublic",
    "TrailPublic",
    "VerdictPublic",
    "VerifierKeysPublic",
]


class ErrorPublic(BaseModel):
    """Body of every 4xx/5xx answer."""

    detail: str


class RequestSummary(BaseModel):
    """One row of a search: a request as its start and end records describe it."""

    request_id: str
    log: str
    tenant: str
    principal: str
    model: str
    started_ts: int = Field(description="ns since the Unix epoch, UTC")
    finished_ts: int | None
    finish_reason: str | None
    n_generated: int | None


class RequestPage(BaseModel):
    """A page of search results; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[RequestSummary]
    next_cursor: str | None


class RecordPublic(BaseModel):
    """A raw record: canonical header bytes (base64), decoded header and stored payload."""

    seq: int
    kind: str
    req_seq: int | None
    ts: int
    leaf: str = Field(description="hex SHA-256(0x00 || body), RFC 9162 2.1.1")
    body_b64: str = Field(description="canonical header bytes, base64 (RFC 4648 section 4)")
    header: dict[str, Any] | None = Field(description="decoded header; null if malformed")
    payload_b64: str | None = Field(description="stored payload bytes, base64; null if none")


class TokenPublic(BaseModel):
    """One generated token with its provenance (C6) and the physical step that produced it."""

    index: int
    token_id: int | None
    provenance: str
    step: int
    seq: int
    ts: int


class DraftPublic(BaseModel):
    """Draft tokens proposed for the request in one step (accepted and rejected)."""

    step: int
    seq: int
    token_ids: list[int]


class CosignaturePublic(BaseModel):
    """A witness's cosignature/v1 of the checkpoint, as stored, and whether it verifies."""

    witness: str = Field(description="the policy's name for the witness, else its cosigner name")
    key_id: str = Field(description="hex")
    time: int = Field(description="POSIX seconds, as the witness signed it")
    status: Literal["verified", "invalid", "unchecked", "unknown"] = Field(
        description="verified/invalid under the configured policy's key; unchecked: no policy "
        "configured; unknown: a cosigner the policy does not name"
    )


class WitnessStatePublic(BaseModel):
    """The outside anchors of one checkpoint: cosignatures, witness policy, RFC 3161 time."""

    log: str
    checkpoint_size: int
    cosignatures: list[CosignaturePublic]
    policy_quorum: str | None = Field(description="None: no witness policy configured")
    policy_satisfied: bool | None = Field(description="None: no witness policy configured")
    timestamp: Literal["verified", "invalid", "unchecked", "absent"] = Field(
        description="the RFC 3161 token of the checkpoint, checked against the configured TSA "
        "certificate (unchecked: none configured)"
    )
    trusted_time: str | None = Field(description="verified genTime, ISO 8601 UTC")


class VerdictPublic(BaseModel):
    """Verification of the trail against its log's newest signed checkpoint.

    ``anchored``: every record shown verifies against a checkpoint signed by a key the API was
    given (AUDITLOG_API_TRUSTED_KEYS), the request's end is among them, and the checkpoint's
    outside anchors the API was configured to require hold (AUDITLOG_WITNESS_POLICY met,
    AUDITLOG_TSA_CERT: a valid timestamp); a cosignature or timestamp that does not verify is
    ``failed``. ``pending``: nothing
    failed but nothing is proven yet (the end is not yet covered by a checkpoint, or the only
    signatures are by keys stored in the database itself). ``failed``: the records do not verify.
    Records after the newest signed checkpoint are never shown.
    """

    status: Literal["anchored", "pending", "failed"]
    message: str
    trust: Literal["trusted", "untrusted"] | None
    checkpoint_size: int | None
    witnesses: WitnessStatePublic | None = Field(
        default=None, description="what the witnesses and the TSA say about that checkpoint"
    )


class TrailErasurePublic(BaseModel):
    """The ``erasure`` record that destroyed a request's content (C16)."""

    log: str = Field(description="the (administrative) log that holds the erasure record")
    seq: int = Field(description="its index in that log")
    ts: int = Field(description="when it was recorded (ns since the epoch)")
    principal: str = Field(description="who ordered the erasure")
    reason: str
    legal_basis: str


class TrailPublic(BaseModel):
    """A request's complete trail: metadata, transcript, raw records and verdict."""

    request_id: str
    log: str
    tenant: str | None
    principal: str | None
    model: str | None
    started_ts: int | None
    finished_ts: int | None
    finish_reason: str | None
    n_generated: int | None
    n_delivered: int | None
    prompt_text: str | None
    prompt_token_ids: list[int] | None
    tokens: list[TokenPublic]
    drafts: list[DraftPublic]
    unreadable_payloads: list[int]
    records: list[RecordPublic]
    verification: VerdictPublic
    content: str = Field(
        default="plain",
        description=(
            "plain, decrypted, unavailable (sealed, no KEK held), erased (by a proven erasure "
            "record), erasure-unproven (an erasure record names it, not proven), missing, "
            "key-mismatch (a stored data key the request did not commit to), erasure-incomplete "
            "(a proven erasure names it, yet a data key is stored)"
        ),
    )
    content_note: str = Field(default="", description='e.g. "erased (record N of LOG, reason)"')
    erasure: TrailErasurePublic | None = Field(
        default=None, description="the erasure record, when content is erased"
    )


class CheckpointPublic(BaseModel):
    """A signed checkpoint: the C2SP note and its parsed size and root."""

    log: str
    size: int
    root: str = Field(description="hex")
    note: str


class InclusionProofPublic(BaseModel):
    """RFC 9162 inclusion proof of one record, leaf-side first."""

    seq: int
    leaf: str = Field(description="hex")
    proof: list[str] = Field(description="hex hashes")


class ProofsPublic(BaseModel):
    """Inclusion proofs of a trail's records against the latest checkpoint."""

    request_id: str
    checkpoint: CheckpointPublic
    proofs: list[InclusionProofPublic]


class ConsistencyProofPublic(BaseModel):
    """RFC 9162 consistency proof between two checkpointed tree sizes."""

    log: str
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


class LogPublic(BaseModel):
    """A log in the store and its latest signed tree size."""

    origin: str
    checkpoint_size: int | None


class VerifierKeysPublic(BaseModel):
    """Public keys (C2SP note verifier form) that sign a log's checkpoints."""

    log: str
    keys: list[str]
    retired: list[str]


class StepManifestPublic(BaseModel):
    """A physical batch step: which requests took how many tokens (no content, C17)."""

    log: str
    seq: int
    ts: int
    step: int
    n: int
    passes: int | None
    batch: list[tuple[str, int]]


class StepPage(BaseModel):
    items: list[StepManifestPublic]
    next_cursor: str | None
