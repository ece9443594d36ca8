"""Configuration of the adapters when the host server builds them (``vllm serve --middleware``
instantiates ``AuditMiddleware(app)`` with no other argument): read from the environment.

Variables: ``AUDITLOG_DB_URL`` (required), ``AUDITLOG_KEY_FILE`` (required: checkpoint signing key,
``auditlog keygen``), ``AUDITLOG_ORIGIN`` (default: the key's name), ``AUDITLOG_WITNESS_DIR``,
``AUDITLOG_SPOOL``, ``AUDITLOG_API_KEYS`` (keys file of ``auditlog.gateway.auth``),
``AUDITLOG_FAIL_OPEN`` (``1`` for fail-open; default fail-closed, C21),
``AUDITLOG_MAX_PAYLOAD_BYTES`` (the payload limit of ``auditlog serve --max-payload-bytes``,
default 1 MiB: a larger request body gets 413 and a refusal trail without content; the former
``AUDITLOG_MAX_BODY_BYTES`` is refused with a message naming the new one), ``AUDITLOG_KEYRING``
(payload encryption keyring, C16; default ``<AUDITLOG_KEY_FILE>.keyring``, created if missing),
``AUDITLOG_ENCRYPTION`` (``0`` records payloads unsealed), ``AUDITLOG_RETENTION`` (retention policy
file, C14; default: every tenant in class ``default``), and the outside anchors of
:class:`~auditlog.witnesses.settings.WitnessSettings`: ``AUDITLOG_WITNESS_POLICY`` (HTTP witnesses),
``AUDITLOG_TSA_URL`` and ``AUDITLOG_TSA_CERT`` (RFC 3161 timestamps).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from auditlog.crypto import open_keyring
from auditlog.errors import ConfigurationError
from auditlog.gateway.auth import ApiKeyTable
from auditlog.ledger import Signer
from auditlog.protect.retention import RetentionPolicy
from auditlog.recorder import DEFAULT_MAX_PAYLOAD_BYTES, AuditRecorder, FailMode
from auditlog.recorder.limits import validate_limit
from auditlog.witnesses.settings import WitnessSettings

__all__ = ["MiddlewareConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MiddlewareConfig:
    db_url: str
    origin: str
    signer: Signer
    witness_dir: Path | None = None
    spool_path: Path | None = None
    identities: ApiKeyTable | None = None
    fail_mode: FailMode = FailMode.CLOSED
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES  # recorder/limits.py
    keyring: Path | None = None  # payload encryption (C16); None: payloads unsealed
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    anchors: WitnessSettings = field(default_factory=WitnessSettings)  # HTTP witnesses, TSA

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MiddlewareConfig:
        env = os.environ if env is None else env
        db_url, key_file = env.get("AUDITLOG_DB_URL"), env.get("AUDITLOG_KEY_FILE")
        if not db_url or not key_file:
            raise ConfigurationError("AUDITLOG_DB_URL and AUDITLOG_KEY_FILE must be set")
        try:
            signer = Signer.from_key_string(Path(key_file).read_text().strip())
        except FileNotFoundError as exc:
            raise ConfigurationError(f"AUDITLOG_KEY_FILE {key_file} not found") from exc
        keys = env.get("AUDITLOG_API_KEYS")
        if "AUDITLOG_MAX_BODY_BYTES" in env:
            raise ConfigurationError(
                "AUDITLOG_MAX_BODY_BYTES was renamed AUDITLOG_MAX_PAYLOAD_BYTES (one limit with "
                "auditlog serve --max-payload-bytes, default 1 MiB): set that one instead"
            )
        limit = env.get("AUDITLOG_MAX_PAYLOAD_BYTES")
        if limit is not None and not (limit.isdigit() and int(limit) > 0):
            raise ConfigurationError(
                f"AUDITLOG_MAX_PAYLOAD_BYTES must be a positive integer (bytes): {limit!r}"
            )
        return cls(
            db_url=db_url,
            origin=env.get("AUDITLOG_ORIGIN") or signer.name,
            signer=signer,
            witness_dir=Path(env["AUDITLOG_WITNESS_DIR"])
            if env.get("AUDITLOG_WITNESS_DIR")
            else None,
            spool_path=Path(env["AUDITLOG_SPOOL"]) if env.get("AUDITLOG_SPOOL") else None,
            identities=ApiKeyTable.from_file(Path(keys)) if keys else None,
            fail_mode=FailMode.OPEN if env.get("AUDITLOG_FAIL_OPEN") == "1" else FailMode.CLOSED,
            max_payload_bytes=int(limit) if limit else DEFAULT_MAX_PAYLOAD_BYTES,
            keyring=None
            if env.get("AUDITLOG_ENCRYPTION") == "0"
            else Path(env.get("AUDITLOG_KEYRING") or f"{key_file}.keyring"),
            retention=RetentionPolicy.from_file(env["AUDITLOG_RETENTION"])
            if env.get("AUDITLOG_RETENTION")
            else RetentionPolicy(),
            anchors=_checked(WitnessSettings.from_env(env)),
        )

    def open_recorder(self) -> AuditRecorder:
        witnesses = self.anchors.recorder_witnesses(self.db_url, self.witness_dir)
        return AuditRecorder.open(
            self.db_url,
            origin=self.origin,
            signers=[self.signer],
            witnesses=witnesses,
            spool_path=self.spool_path,
            mode=self.fail_mode,
            key_provider=None if self.keyring is None else open_keyring(self.keyring),
            retention=self.retention,
            max_payload_bytes=validate_limit(self.max_payload_bytes),
            close_witnesses=True,
        )


def _checked(anchors: WitnessSettings) -> WitnessSettings:
    """The outside anchors, their files read now: a bad policy or certificate is refused at
    configuration, not at the first request."""
    anchors.check()
    return anchors
