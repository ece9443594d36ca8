"""Trusted time for checkpoints: RFC 3161 timestamps from a timestamp authority (TSA).

A checkpoint's signed note (its bytes as stored, UTF-8) is hashed with SHA-256 and sent to the
TSA as a ``TimeStampReq`` (``application/timestamp-query``, with ``certReq`` and a nonce); the
``TimeStampResp`` that comes back is checked (status granted, nonce, imprint) and stored with the
checkpoint. :func:`verify_timestamp` checks a stored response against the TSA's certificates
given out of band and returns the trusted time (genTime). Built on ``rfc3161-client``.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerifierBuilder,
    decode_timestamp_response,
)
from rfc3161_client import VerificationError as TsaVerificationError

from auditlog.errors import AuditlogError, ConfigurationError

__all__ = ["TimestampError", "load_tsa_certificates", "request_timestamp", "verify_timestamp"]

_MAX_RESPONSE_BYTES = 256 * 1024


class TimestampError(AuditlogError):
    """The TSA did not timestamp the checkpoint, or a stored timestamp does not verify."""


def request_timestamp(url: str, note: str, *, timeout_s: float = 10.0) -> tuple[bytes, int]:
    """Timestamp ``note`` at the TSA ``url``: (DER TimeStampResp, genTime in ns)."""
    request = (
        TimestampRequestBuilder()
        .data(note.encode())
        .hash_algorithm(HashAlgorithm.SHA256)
        .cert_request(cert_request=True)
        .nonce(nonce=True)
        .build()
    )
    http = urllib.request.Request(
        url,
        data=request.as_bytes(),
        method="POST",
        headers={"Content-Type": "application/timestamp-query"},
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout_s) as answer:
            data = answer.read(_MAX_RESPONSE_BYTES)
    except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts
        raise TimestampError(f"timestamp authority {url}: {exc}") from exc
    try:
        response = decode_timestamp_response(data)
    except ValueError as exc:
        raise TimestampError(f"timestamp authority {url}: not a TimeStampResp: {exc}") from exc
    if PKIStatus(response.status) not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        raise TimestampError(f"timestamp authority {url} refused: {response.status_string}")
    info = response.tst_info
    if info.nonce != request.nonce or info.message_imprint.message != _digest(note):
        raise TimestampError(f"timestamp authority {url} answered for another request")
    return data, _ns(info.gen_time)


def load_tsa_certificates(pem: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM file: the TSA's certificate and the root(s) it chains to."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ConfigurationError(f"TSA certificate file is not PEM certificates: {exc}") from exc
    if not any(c.issuer == c.subject for c in certs):
        raise ConfigurationError("TSA certificate file holds no root (self-signed) certificate")
    return certs


def verify_timestamp(response: bytes, note: str, certs: Sequence[x509.Certificate]) -> datetime:
    """Check a stored TimeStampResp over ``note`` against the TSA certificates; returns its
    genTime. Raises :class:`TimestampError` when it does not verify."""
    roots = [c for c in certs if c.issuer == c.subject]
    leaves = [c for c in certs if c.issuer != c.subject]
    builder = VerifierBuilder()
    for root in roots:
        builder = builder.add_root_certificate(root)
    if leaves:
        builder = builder.tsa_certificate(leaves[0])
        for intermediate in leaves[1:]:
            builder = builder.add_intermediate_certificate(intermediate)
    try:
        decoded = decode_timestamp_response(response)
        builder.build().verify(decoded, _digest(note))
    except (ValueError, TsaVerificationError) as exc:
        raise TimestampError(f"timestamp does not verify: {exc}") from None
    return decoded.tst_info.gen_time


def _digest(note: str) -> bytes:
    return hashlib.sha256(note.encode()).digest()


def _ns(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000
