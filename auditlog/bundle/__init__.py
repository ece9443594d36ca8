"""Evidence bundles: export a request's trail from the store, verify it offline (C20)."""

from __future__ import annotations

from .format import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    Bundle,
    BundleErasure,
    BundleRecord,
    decode_bundle,
    encode_bundle,
)
from .transcript import Transcript, TranscriptToken, build_transcript
from .verify import (
    BundleReport,
    ErasureInfo,
    KeyTrust,
    parse_verifier_keys,
    verify_bundle,
    verify_decoded,
)

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "Bundle",
    "BundleErasure",
    "BundleRecord",
    "BundleReport",
    "ErasureInfo",
    "KeyTrust",
    "Transcript",
    "TranscriptToken",
    "build_transcript",
    "decode_bundle",
    "encode_bundle",
    "parse_verifier_keys",
    "verify_bundle",
    "verify_decoded",
]
