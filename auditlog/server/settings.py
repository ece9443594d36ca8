"""Settings of the OpenAI-compatible inference server (``create_app(settings)``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditlog.errors import ConfigurationError
from auditlog.gateway.auth import ApiKeyTable
from auditlog.recorder import DEFAULT_MAX_PAYLOAD_BYTES, FailMode
from auditlog.recorder.kinds import RecorderKind
from auditlog.recorder.limits import validate_limit
from auditlog.witnesses.settings import WitnessSettings

if TYPE_CHECKING:
    from auditlog.engine import LLMEngine
    from auditlog.events import Event
    from auditlog.ledger import Signer

__all__ = ["EngineFactory", "ReleaseHook", "ServerSettings"]

EngineFactory = Callable[[Callable[["Event"], None]], "LLMEngine"]
"""Builds the engine, given the event sink it MUST emit every event into."""

ReleaseHook = Callable[[str, int], None]
"""Called as ``hook(request_id, n_tokens)`` just before output covering the request's first
``n_tokens`` tokens leaves the server (the C21 release point; tests assert durability there)."""

DEFAULT_MODEL_NAME = "auditlog-demo"
DEFAULT_MAX_TOKENS = 16  # the OpenAI completions default
MAX_TOKENS_LIMIT = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """Everything ``create_app`` needs. Nothing here is reachable from the HTTP API.

    ``max_payload_bytes``: a request body larger than this is refused with 413 before anything
    of it is recorded (server/limits.py), and the recorder refuses a larger prompt.

    ``recorder_kind``: where the recorder's writer runs (recorder/kinds.py): a thread of the
    server's process (default) or a child process.

    ``recording`` exists for the benchmark baseline only: with it False the server records
    nothing and waits for nothing. No request field, header or endpoint can change it (C23).
    """

    db_url: str
    origin: str
    signers: Sequence[Signer]
    api_keys: ApiKeyTable
    witness_dir: Path | None = None
    anchors: WitnessSettings = field(default_factory=WitnessSettings)  # HTTP witnesses, TSA
    spool_path: Path | None = None
    fail_mode: FailMode = FailMode.CLOSED
    model_name: str = DEFAULT_MODEL_NAME
    device: str = "cpu"
    speculative: bool = True
    engine_factory: EngineFactory | None = None
    release_hook: ReleaseHook | None = None
    recorder_options: dict[str, Any] | None = None
    recorder_kind: RecorderKind = RecorderKind.THREAD
    recording: bool = True
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` naming the first bad setting."""
        if not self.db_url:
            raise ConfigurationError("db_url is required")
        if not self.origin or "\n" in self.origin:
            raise ConfigurationError(f"origin must be a non-empty single line, got {self.origin!r}")
        if self.recording and not self.signers:
            raise ConfigurationError("at least one checkpoint signing key is required")
        if len(self.api_keys) == 0:
            raise ConfigurationError("no API keys configured: every caller must be identified (C3)")
        validate_limit(self.max_payload_bytes)
        if not self.model_name:
            raise ConfigurationError("model_name must not be empty")
