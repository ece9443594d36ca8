"""The evidence bundle: one request's trail with everything needed to verify it offline (C20).

A bundle is one canonical JSON object (RFC 8785 bytes, docs/FORMAT.md section 9)::

    {"format": "auditlog-bundle", "v": 1,
     "log": <origin>, "request_id": <id>,
     "checkpoint": <C2SP signed note text>,
     "keys": [<verifier key>, ...],                    # sorted; the keys that signed the note
     "records": [{"seq": <int>, "body": <base64>,       # canonical header bytes
                  "payload": <base64> | null,           # stored payload bytes (null: none/erased)
                  "proof": [<base64 hash>, ...]}, ...], # RFC 9162 inclusion proof at seq
     "erasure": {"log": <origin>, "checkpoint": <note>, # only when an erasure record names the
                 "keys": [...], "seq": <int>,           # request: that record, the checkpoint of
                 "body": <base64>, "proof": [...]},     # its own log covering it, its proof
     "timestamp": <base64>}                            # optional: the checkpoint's RFC 3161
                                                       # TimeStampResp (DER), when one is stored

Binary values are standard base64 with padding (RFC 4648 section 4). Records are in chain order
(``req_seq`` 0, 1, ...). The bytes depend only on the stored trail and the checkpoint chosen, so
exporting the same request against the same checkpoint gives the same bytes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Final

import orjson

from auditlog.errors import FormatError
from auditlog.ledger.canonical import MAX_SAFE_INTEGER, canonical_json

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "MAX_BUNDLE_RECORDS",
    "Bundle",
    "BundleErasure",
    "BundleRecord",
    "decode_bundle",
    "encode_bundle",
]

#: Value of the bundle's ``format`` member.
BUNDLE_FORMAT: Final = "auditlog-bundle"
#: Value of the bundle's ``v`` member; bumped with any change to this layout.
BUNDLE_VERSION: Final = 1
#: Most records a bundle may hold (a bound on what a verifier will read).
MAX_BUNDLE_RECORDS: Final = 10_000_000
#: Length in bytes of every hash in a proof.
_HASH_SIZE = 32
_TOP_KEYS = frozenset({"format", "v", "log", "request_id", "checkpoint", "keys", "records"})
_RECORD_KEYS = frozenset({"seq", "body", "payload", "proof"})
_ERASURE_KEYS = frozenset({"log", "checkpoint", "keys", "seq", "body", "proof"})


@dataclass(frozen=True, slots=True)
class BundleRecord:
    """One record of the trail: header bytes, stored payload bytes and inclusion proof."""

    seq: int
    body: bytes
    payload: bytes | None
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class BundleErasure:
    """The ``erasure`` record that names the bundle's request (C16), with what proves it offline:
    the signed checkpoint of the record's own log covering it, the keys that signed that note,
    and the record's inclusion proof in it. Its payloads are then absent from the bundle."""

    log: str
    checkpoint: str
    keys: tuple[str, ...]
    seq: int
    body: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Bundle:
    """A decoded bundle (not yet verified)."""

    log: str
    request_id: str
    checkpoint: str
    keys: tuple[str, ...]
    records: tuple[BundleRecord, ...]
    erasure: BundleErasure | None = None  # absent unless an erasure record names the request
    timestamp: bytes | None = None  # RFC 3161 TimeStampResp over the log's note, as stored


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_bundle(bundle: Bundle) -> bytes:
    """Canonical bytes of ``bundle`` (keys sorted, so equal bundles give equal bytes). The
    ``erasure`` member is written only when there is one, so a bundle of a request no erasure
    names has the same bytes as before the member existed."""
    obj: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "v": BUNDLE_VERSION,
        "log": bundle.log,
        "request_id": bundle.request_id,
        "checkpoint": bundle.checkpoint,
        "keys": sorted(bundle.keys),
        "records": [
            {
                "seq": r.seq,
                "body": _b64(r.body),
                "payload": None if r.payload is None else _b64(r.payload),
                "proof": [_b64(h) for h in r.proof],
            }
            for r in bundle.records
        ],
    }
    if bundle.erasure is not None:
        e = bundle.erasure
        obj["erasure"] = {
            "log": e.log,
            "checkpoint": e.checkpoint,
            "keys": sorted(e.keys),
            "seq": e.seq,
            "body": _b64(e.body),
            "proof": [_b64(h) for h in e.proof],
        }
    if bundle.timestamp is not None:  # likewise only when one is stored
        obj["timestamp"] = _b64(bundle.timestamp)
    return canonical_json(obj)


def _unb64(value: Any, where: str) -> bytes:
    if type(value) is not str:
        raise FormatError(f"{where}: expected a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise FormatError(f"{where}: not valid base64") from None


def _str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if type(value) is not str or not value:
        raise FormatError(f"bundle member {name!r}: expected a non-empty string, got {value!r}")
    return value


def _record(i: int, obj: Any) -> BundleRecord:
    where = f"records[{i}]"
    if type(obj) is not dict or obj.keys() != _RECORD_KEYS:
        found = sorted(obj) if type(obj) is dict else type(obj).__name__
        raise FormatError(f"{where}: expected members {sorted(_RECORD_KEYS)}, got {found}")
    seq = obj["seq"]
    if type(seq) is not int or not 0 <= seq <= MAX_SAFE_INTEGER:
        raise FormatError(f"{where}.seq: expected a non-negative integer, got {seq!r}")
    hashes = _proof(obj["proof"], where)
    payload = None if obj["payload"] is None else _unb64(obj["payload"], f"{where}.payload")
    return BundleRecord(seq, _unb64(obj["body"], f"{where}.body"), payload, hashes)


def _proof(proof: Any, where: str) -> tuple[bytes, ...]:
    if type(proof) is not list:
        raise FormatError(f"{where}.proof: expected a list of hashes")
    hashes = tuple(_unb64(h, f"{where}.proof[{j}]") for j, h in enumerate(proof))
    for j, h in enumerate(hashes):
        if len(h) != _HASH_SIZE:
            raise FormatError(f"{where}.proof[{j}]: expected {_HASH_SIZE} bytes, got {len(h)}")
    return hashes


def _keys(keys: Any, where: str) -> tuple[str, ...]:
    if type(keys) is not list or not all(type(k) is str for k in keys):
        raise FormatError(f"{where}: expected a list of verifier key strings")
    return tuple(keys)


def _erasure(obj: Any) -> BundleErasure:
    where = "bundle member 'erasure'"
    if type(obj) is not dict or obj.keys() != _ERASURE_KEYS:
        found = sorted(obj) if type(obj) is dict else type(obj).__name__
        raise FormatError(f"{where}: expected members {sorted(_ERASURE_KEYS)}, got {found}")
    seq = obj["seq"]
    if type(seq) is not int or not 0 <= seq <= MAX_SAFE_INTEGER:
        raise FormatError(f"{where}.seq: expected a non-negative integer, got {seq!r}")
    return BundleErasure(
        log=_str(obj, "log"),
        checkpoint=_str(obj, "checkpoint"),
        keys=_keys(obj["keys"], f"{where}.keys"),
        seq=seq,
        body=_unb64(obj["body"], f"{where}.body"),
        proof=_proof(obj["proof"], where),
    )


def decode_bundle(data: bytes) -> Bundle:
    """Parse bundle bytes strictly; raises FormatError naming the first bad member.

    The bytes MUST be the canonical encoding (so that a bundle has exactly one byte form).
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"bundle is not JSON: {exc}") from None
    if type(obj) is not dict:
        raise FormatError(f"bundle is not a JSON object: {type(obj).__name__}")
    if obj.get("format") != BUNDLE_FORMAT:
        raise FormatError(f"not an auditlog bundle: format is {obj.get('format')!r}")
    if obj.get("v") != BUNDLE_VERSION or type(obj.get("v")) is not int:
        raise FormatError(
            f"unsupported bundle version: expected {BUNDLE_VERSION}, got {obj.get('v')!r}"
        )
    if obj.keys() - {"erasure", "timestamp"} != _TOP_KEYS:
        raise FormatError(
            f"bundle members: expected {sorted(_TOP_KEYS)} (and optionally 'erasure', "
            f"'timestamp'), got {sorted(obj)}"
        )
    records = obj["records"]
    if type(records) is not list or not 0 < len(records) <= MAX_BUNDLE_RECORDS:
        raise FormatError(f"bundle member 'records': expected 1 to {MAX_BUNDLE_RECORDS} records")
    bundle = Bundle(
        log=_str(obj, "log"),
        request_id=_str(obj, "request_id"),
        checkpoint=_str(obj, "checkpoint"),
        keys=_keys(obj["keys"], "bundle member 'keys'"),
        records=tuple(_record(i, r) for i, r in enumerate(records)),
        erasure=_erasure(obj["erasure"]) if "erasure" in obj else None,
        timestamp=_unb64(obj["timestamp"], "timestamp") if "timestamp" in obj else None,
    )
    if encode_bundle(bundle) != data:
        raise FormatError("bundle bytes are not in canonical form (RFC 8785, keys sorted)")
    return bundle
