"""Configuration of the outside anchors a recorder feeds: HTTP witnesses and an RFC 3161 TSA.

One settings object, read the same way by ``auditlog serve`` (options with these environment
variables as defaults) and by the adapters (``MiddlewareConfig.from_env``):

- ``AUDITLOG_WITNESS_POLICY``: the witness policy file (docs/WITNESSES.md). Its ``witness``
  lines are the witness list (name, cosigner verifier key, URL); its groups and quorum say when
  a checkpoint counts as witnessed. Every witness with a URL is sent every checkpoint.
- ``AUDITLOG_TSA_URL``: a timestamp authority that stamps every checkpoint.
- ``AUDITLOG_TSA_CERT``: PEM with the TSA's certificate and its root; each token is checked
  against it before it is stored (optional on the recorder side; ``verify`` needs it).

The auditor API reads ``AUDITLOG_WITNESS_POLICY`` and ``AUDITLOG_TSA_CERT`` too, to check what
it shows. Without any of them nothing is sent anywhere (the demo records without witnesses).
Network failures never block recording: both senders queue in the background
(:mod:`auditlog.witnesses.background`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditlog.errors import ConfigurationError

__all__ = ["WitnessSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessSettings:
    """Where a recorder's checkpoints go besides the database; see the module docstring.
    Constructing one reads nothing: :meth:`check` and :meth:`open_senders` read the files."""

    policy_file: Path | None = None
    tsa_url: str | None = None
    tsa_cert: Path | None = None
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WitnessSettings:
        """``AUDITLOG_WITNESS_POLICY``, ``AUDITLOG_TSA_URL``, ``AUDITLOG_TSA_CERT``."""
        env = os.environ if env is None else env
        policy, url, cert = (
            env.get(name) or None
            for name in ("AUDITLOG_WITNESS_POLICY", "AUDITLOG_TSA_URL", "AUDITLOG_TSA_CERT")
        )
        return cls(
            policy_file=None if policy is None else Path(policy),
            tsa_url=url,
            tsa_cert=None if cert is None else Path(cert),
        )

    @property
    def enabled(self) -> bool:
        return self.policy_file is not None or self.tsa_url is not None

    def check(self) -> None:
        """Read and check the files and the URL; ConfigurationError names the first problem."""
        self._load()

    def recorder_witnesses(self, db_url: str, witness_dir: Path | None = None) -> list[Any]:
        """Every witness of a recorder of ``db_url``: the directory witness at ``witness_dir``
        (created if missing), then :meth:`open_senders`. The one place where ``auditlog serve``
        and the adapters wire their recorder's witnesses."""
        from auditlog.ledger import DirectoryWitness

        witnesses: list[Any] = []
        if witness_dir is not None:
            witness_dir.mkdir(parents=True, exist_ok=True)
            witnesses.append(DirectoryWitness(witness_dir))
        return witnesses + self.open_senders(db_url)

    def open_senders(self, db_url: str) -> list[Any]:
        """The recorder witnesses of these settings for the log(s) of ``db_url``: a
        :class:`~auditlog.witnesses.pool.WitnessPool` and/or a
        :class:`~auditlog.witnesses.timestamper.Timestamper` (not started; the first checkpoint
        starts them). Give them to the recorder with ``close_witnesses=True``."""
        policy, certs = self._load()
        senders: list[Any] = []
        if policy is not None:
            from .pool import WitnessPool

            senders.append(WitnessPool(db_url, policy, timeout_s=self.timeout_s))
        if self.tsa_url is not None:
            from .timestamper import Timestamper

            senders.append(Timestamper(db_url, self.tsa_url, timeout_s=self.timeout_s, certs=certs))
        return senders

    def _load(self) -> tuple[Any, list[Any]]:
        if self.tsa_cert is not None and self.tsa_url is None:
            raise ConfigurationError("a TSA certificate is configured without a TSA URL")
        if self.tsa_url is not None and not self.tsa_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"TSA URL must be http:// or https://, got {self.tsa_url!r}")
        from .state import OutsideAnchors

        anchors = OutsideAnchors.load(self.policy_file, self.tsa_cert)
        policy = anchors.policy
        if policy is not None and not any(w.url for w in policy.witnesses.values()):
            raise ConfigurationError(
                f"witness policy {self.policy_file}: no witness has a URL to send checkpoints to"
            )
        return policy, list(anchors.tsa_certs)
