"""Settings of the auditor API, read from ``AUDITLOG_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from auditlog.errors import ConfigurationError, FormatError
from auditlog.ledger import Signer

__all__ = ["DEFAULT_API_ORIGIN", "MAX_PAGE_SIZE", "ApiSettings"]

#: Origin of the API's own access log when none is configured.
DEFAULT_API_ORIGIN = "auditlog.local/api-access"
#: Largest page a search may return.
MAX_PAGE_SIZE = 500


class ApiSettings(BaseSettings):
    """Configuration of :func:`auditlog.api.create_app`.

    ``signing_key`` names a file holding the access log's private key in note form
    (``PRIVATE+KEY+<name>+<hex id>+<base64>``); ``trusted_keys`` are verifier keys of the logs
    this API serves, used for the verdicts it computes (keys found only in the database are
    reported as untrusted).
    """

    model_config = SettingsConfigDict(env_prefix="AUDITLOG_", extra="ignore")

    db_url: str = Field(description="SQLAlchemy URL of the audit store")
    api_read_db_url: str | None = Field(
        default=None,
        description="database the served logs are read from, e.g. a streaming replica of "
        "db_url (docs/SCALING.md); the access log and the API keys stay on db_url",
    )
    api_origin: str = Field(
        default=DEFAULT_API_ORIGIN, description="origin of the API's own access log"
    )
    api_signing_key: Path = Field(description="file with the access log's private note key")
    api_trusted_keys: list[str] = Field(
        default_factory=list, description="verifier keys of the served logs (note form)"
    )
    api_keyring: Path | None = Field(
        default=None,
        description="keyring of the tenants' payload KEKs (C16); without it sealed content "
        "is shown as unavailable",
    )
    api_witness_dir: Path | None = Field(
        default=None,
        description="witness directory that receives every access-log checkpoint (C10)",
    )
    api_admin_signing_key: Path | None = Field(
        default=None,
        description="file with the private note key of the administrative log that records "
        "holds and erasures placed through the API (C15, C16; its name is the log's origin); "
        "without it those writes answer 503",
    )
    witness_policy: Path | None = Field(
        default=None,
        description="witness policy file (docs/WITNESSES.md): the stored cosignatures of each "
        "verdict's checkpoint are checked against it, and a trail is anchored only when it holds",
    )
    tsa_cert: Path | None = Field(
        default=None,
        description="PEM with the RFC 3161 TSA's certificate and its root: a verdict's "
        "checkpoint shows its trusted time, and is anchored only with a valid timestamp",
    )
    api_default_page_size: int = Field(default=50, ge=1, le=MAX_PAGE_SIZE)
    api_max_page_size: int = Field(default=200, ge=1, le=MAX_PAGE_SIZE)
    api_replay_model_dir: Path | None = Field(
        default=None, description="models for replay, found by digest (default: the demo pair)"
    )
    api_migrate: bool = Field(
        default=False, description="run the migrations to head when the app starts"
    )

    def load_signer(self) -> Signer:
        """The access log's signing key, from ``api_signing_key``."""
        return _load_key(self.api_signing_key, "API signing key")

    def load_admin_signer(self) -> Signer | None:
        """The administrative log's signing key, from ``api_admin_signing_key`` (None: unset)."""
        if self.api_admin_signing_key is None:
            return None
        signer = _load_key(self.api_admin_signing_key, "API admin signing key")
        if signer.name == self.api_origin:
            raise ConfigurationError(
                f"the API admin signing key is named {signer.name!r}, the access log's origin; "
                "the administrative log needs a key of its own name"
            )
        return signer


def _load_key(path: Path, what: str) -> Signer:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {what} {path}: {exc}") from exc
    try:
        return Signer.from_key_string(text)
    except FormatError as exc:
        raise ConfigurationError(f"{what} {path} is not a private note key: {exc}") from exc
