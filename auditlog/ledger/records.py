"""Record headers: building them fast, and parsing stored ones strictly (docs/FORMAT.md section 3).

A record is its canonical header bytes (the hashed object) plus an optional stored payload. The
header commits to the payload bytes by their SHA-256 (``payload``), and to the previous record of
the same request by its leaf hash (``prev``): one value is both the chain link and the Merkle leaf.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from auditlog.errors import FormatError
from auditlog.ledger.canonical import MAX_SAFE_INTEGER, canonical_json, check_canonical_subset
from auditlog.ledger.hashes import LEAF_HASH_PREFIX

__all__ = [
    "BASE_FIELDS",
    "FORMAT_VERSION",
    "PROVENANCE_CODES",
    "REQUEST_KINDS",
    "ZERO_HASH",
    "Record",
    "RecordKind",
    "build_record",
    "parse_header",
    "payload_bytes",
]

#: Value of the header's ``v`` field.
FORMAT_VERSION: Final = 1
#: ``prev`` of the first record (``req_seq`` 0) of every request chain.
ZERO_HASH: Final = "0" * 64


class RecordKind(enum.StrEnum):
    """The ``kind`` of a record (docs/DESIGN.md section 3)."""

    REQUEST_START = "request.start"
    TOKENS = "tokens"
    REQUEST_END = "request.end"
    STEP = "step"
    ACCESS = "access"
    ADMIN = "admin"
    ERASURE = "erasure"


#: Kinds that form per-request chains; the others have request_id, req_seq and prev = null.
REQUEST_KINDS: Final = frozenset(
    {RecordKind.REQUEST_START, RecordKind.TOKENS, RecordKind.REQUEST_END}
)
#: Provenance codes of a ``tokens`` record's ``prov`` list (C6).
PROVENANCE_CODES: Final = frozenset({"target", "draft_accepted", "target_recovered", "bonus"})
#: Header fields present in every record; kind-specific ``fields`` MUST NOT reuse these names.
BASE_FIELDS: Final = frozenset(
    {"v", "log", "seq", "kind", "request_id", "req_seq", "ts", "prev", "payload"}
)

_KINDS: Final[dict[Any, RecordKind]] = {kind.value: kind for kind in RecordKind}
_sha256 = hashlib.sha256
_DUMPS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_TS_LIMIT = 10**20  # ts is at most 20 decimal digits


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1 us per instance on the hot path
class Record:
    """One built record: the indexed copies of header fields, the hashed bytes and the payload."""

    seq: int
    kind: RecordKind
    request_id: str | None
    req_seq: int | None
    ts: int
    tenant: str | None
    body: bytes  # canonical header bytes, the hashed object
    leaf: bytes  # SHA-256(0x00 || body), RFC 9162 2.1.1
    payload: bytes | None  # stored payload bytes, committed to by the header's "payload"


def payload_bytes(obj: Mapping[str, Any], *, trusted: bool = False) -> bytes:
    """Canonical JSON bytes of a payload object (the seam where encryption goes).

    ``trusted=True`` skips the subset walk: the caller MUST pass only ASCII keys, strings and
    integers (the recorder's token payloads, whose ids it type-checked on arrival).
    """
    if trusted:
        try:
            return orjson.dumps(obj, option=_DUMPS)
        except TypeError as exc:
            raise FormatError(f"payload is not canonical JSON: {exc}") from None
    return canonical_json(obj)


# --- validation shared by build_record and parse_header -------------------------------------

_HEX64 = re.compile(r"[0-9a-f]{64}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_SAFE_INTEGER


def _bad(field: str, expected: str, value: Any) -> FormatError:
    return FormatError(f"header field {field!r}: expected {expected}, got {value!r}")


def _check_model_ref(field: str, ref: Any) -> None:
    if not isinstance(ref, dict):
        raise _bad(field, "a model reference object", ref)
    for name in ("name", "weights_sha256", "tokenizer_sha256", "architecture"):
        if not isinstance(ref.get(name), str):
            raise _bad(f"{field}.{name}", "a string", ref.get(name))


def _check_tokens(h: Mapping[str, Any]) -> None:
    n, step, prov = h.get("n"), h.get("step"), h.get("prov")
    if type(step) is not int or not 0 <= step <= MAX_SAFE_INTEGER:
        raise _bad("step", "a non-negative integer", step)
    if type(n) is not int or not 0 <= n <= MAX_SAFE_INTEGER:
        raise _bad("n", "a non-negative integer", n)
    if (
        type(prov) is not list
        or len(prov) != n
        or not set(map(type, prov)) <= {str}
        or not PROVENANCE_CODES.issuperset(prov)
    ):
        raise _bad("prov", f"a list of {n} provenance codes", prov)


def _check_step(h: Mapping[str, Any]) -> None:
    step, batch, n = h.get("step"), h.get("batch"), h.get("n")
    if type(step) is not int or not 0 <= step <= MAX_SAFE_INTEGER:
        raise _bad("step", "a non-negative integer", step)
    # batch: [[request_id, n], ...], distinct request ids (checked with C-level set operations:
    # a manifest lists every request of a physical batch)
    if (
        type(batch) is not list
        or not set(map(type, batch)) <= {list}
        or not set(map(len, batch)) <= {2}
    ):
        raise _bad("batch", "a list of [request_id, n] pairs", batch)
    rids = [entry[0] for entry in batch]
    counts = [entry[1] for entry in batch]
    if (
        not set(map(type, rids)) <= {str}
        or not set(map(type, counts)) <= {int}
        or (counts and not 0 <= min(counts) <= max(counts) <= MAX_SAFE_INTEGER)
        or len(set(rids)) != len(rids)
    ):
        raise _bad("batch", "distinct [request_id, n] pairs", batch)
    total = sum(counts)
    if n != total or type(n) is not int:
        raise _bad("n", f"the batch total {total}", n)


def _check_start(h: Mapping[str, Any]) -> None:
    for name in ("principal", "client", "engine"):
        if not isinstance(h.get(name), str):
            raise _bad(name, "a string", h.get(name))
    if not isinstance(h.get("params"), dict):
        raise _bad("params", "an object", h.get("params"))
    _check_model_ref("target", h.get("target"))
    if h.get("draft") is not None:
        _check_model_ref("draft", h.get("draft"))
    if "enc" in h:
        enc = h["enc"]
        if (
            type(enc) is not dict
            or set(enc) != {"alg", "kek", "dek"}
            or enc["alg"] != "A256GCM"
            or type(enc["kek"]) is not str
            or not enc["kek"]
            or type(enc["dek"]) is not str
            or _HEX64.fullmatch(enc["dek"]) is None
        ):
            raise _bad("enc", '{"alg": "A256GCM", "kek": key id, "dek": 64 hex}', enc)
    if "retention" in h:
        ret = h["retention"]
        if (
            type(ret) is not dict
            or set(ret) != {"class", "legal", "until"}
            or type(ret["class"]) is not str
            or not ret["class"]
            or type(ret["legal"]) is not bool
            or type(ret["until"]) is not str
            or _DECIMAL.fullmatch(ret["until"]) is None
        ):
            raise _bad("retention", '{"class": name, "legal": bool, "until": decimal ns}', ret)


def _check_end(h: Mapping[str, Any]) -> None:
    if not isinstance(h.get("reason"), str):
        raise _bad("reason", "a string", h.get("reason"))
    for name in ("n_generated", "n_delivered"):
        value = h.get(name)
        # Crash recovery cannot know what the dead process generated or delivered: null there.
        if not (_is_count(value) or (value is None and h["reason"] == "interrupted")):
            raise _bad(name, "a non-negative integer (null only when interrupted)", value)


def _check_nothing(h: Mapping[str, Any]) -> None:
    return None


def _check_erasure(h: Mapping[str, Any]) -> None:
    """``erasure`` (C16): who, why, on what legal basis, and which requests' data keys went."""
    for name in ("principal", "reason", "legal_basis"):
        if type(h.get(name)) is not str or not h[name]:
            raise _bad(name, "a non-empty string", h.get(name))
    erased = h.get("erased")
    if (
        type(erased) is not list
        or not erased
        or not all(
            type(e) is dict
            and set(e) == {"log", "request_id"}
            and type(e["log"]) is str
            and type(e["request_id"]) is str
            and e["log"]
            and e["request_id"]
            for e in erased
        )
    ):
        raise _bad("erased", 'a non-empty list of {"log", "request_id"} objects', erased)


# Per kind: the checker of its required fields, and the fields whose types are fully checked by
# it or by _check_header (every other field, nested ones included, goes through the generic
# canonical-subset check).
_TYPED_BASE = BASE_FIELDS | {"tenant"}
_KIND_RULES: Final = {
    RecordKind.REQUEST_START: (
        _check_start,
        _TYPED_BASE | {"principal", "client", "engine"},
    ),
    RecordKind.TOKENS: (_check_tokens, _TYPED_BASE | {"step", "n", "prov"}),
    RecordKind.REQUEST_END: (_check_end, _TYPED_BASE | {"reason", "n_generated", "n_delivered"}),
    RecordKind.STEP: (_check_step, _TYPED_BASE | {"step", "batch", "n"}),
    RecordKind.ACCESS: (_check_nothing, _TYPED_BASE),
    RecordKind.ADMIN: (_check_nothing, _TYPED_BASE),
    RecordKind.ERASURE: (
        _check_erasure,
        _TYPED_BASE | {"principal", "reason", "legal_basis", "erased"},
    ),
}


def _check_header(h: dict[str, Any], kind: RecordKind) -> bool:
    """Validate a header whose base fields ``v``, ``log``, ``seq``, ``ts`` and ``payload`` are
    already checked. Returns True if some key (at any depth) is non-ASCII."""
    request_id, req_seq, prev = h.get("request_id"), h.get("req_seq"), h.get("prev")
    if kind in REQUEST_KINDS:
        if type(request_id) is not str or not request_id:
            raise _bad("request_id", f"a non-empty string in a {kind} record", request_id)
        if type(req_seq) is not int or not 0 <= req_seq <= MAX_SAFE_INTEGER:
            raise _bad("req_seq", "a non-negative integer", req_seq)
        if (req_seq == 0) != (kind is RecordKind.REQUEST_START):
            raise _bad("req_seq", "0 exactly for request.start", req_seq)
        if req_seq == 0:
            if prev != ZERO_HASH:
                raise _bad("prev", "64 zeros at req_seq 0", prev)
        elif type(prev) is not str or _HEX64.fullmatch(prev) is None or prev == ZERO_HASH:
            raise _bad("prev", "the previous record's leaf hash in lowercase hex", prev)
        if type(h.get("tenant")) is not str:
            raise _bad("tenant", "a string", h.get("tenant"))
    elif request_id is not None or req_seq is not None or prev is not None:
        raise FormatError(f"a {kind} record must have request_id, req_seq and prev null")
    elif "tenant" in h and type(h["tenant"]) is not str:
        raise _bad("tenant", "a string when present", h["tenant"])
    checker, typed = _KIND_RULES[kind]
    checker(h)
    if typed.issuperset(h):
        return False
    # Every other field must lie in the canonical subset (no floats, safe integers).
    return check_canonical_subset({key: value for key, value in h.items() if key not in typed})


# --- public API ------------------------------------------------------------------------------


def build_record(
    *,
    log: str,
    seq: int,
    kind: RecordKind,
    request_id: str | None,
    req_seq: int | None,
    ts: int,
    prev: str | None,
    payload: bytes | None,
    fields: Mapping[str, Any],
    trusted: bool = False,
) -> Record:
    """Build one record: header bytes, payload digest and leaf hash.

    ``ts`` is integer nanoseconds since the Unix epoch, written into the header as a decimal
    string (it exceeds 2^53). ``fields`` are the kind-specific header fields. Raises
    :class:`FormatError` for a field name that collides with a base field, and for any header
    that :func:`parse_header` would refuse: a built record always verifies.

    ``trusted=True`` is the recorder's hot path for the records it composes itself (``tokens``
    and ``step``): the type checks are skipped, so the caller MUST pass fields of the documented
    types with ASCII keys. The bytes are the same canonical bytes (a property test checks it), and
    the verifier still checks every stored header.
    """
    if trusted:
        record_kind = kind
    else:
        if type(log) is not str or not log:
            raise _bad("log", "a non-empty string", log)
        if not _is_count(seq):
            raise _bad("seq", "a non-negative integer", seq)
        if type(ts) is not int or not 0 <= ts < _TS_LIMIT:
            raise _bad("ts", "integer nanoseconds in [0, 10^20)", ts)
        found = _KINDS.get(kind) if isinstance(kind, str) else None
        if found is None:
            raise _bad("kind", "one of " + ", ".join(sorted(_KINDS)), kind)
        record_kind = found
        if fields and not BASE_FIELDS.isdisjoint(fields):
            clash = sorted(BASE_FIELDS.intersection(fields))
            raise FormatError(f"kind-specific fields collide with base header fields: {clash}")
    header: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "log": log,
        "seq": seq,
        "kind": record_kind.value,
        "request_id": request_id,
        "req_seq": req_seq,
        "ts": str(ts),
        "prev": prev,
        # payload = lowercase hex SHA-256 of the stored payload bytes, or null
        "payload": None if payload is None else _sha256(payload).hexdigest(),
        **fields,
    }
    non_ascii_keys = False if trusted else _check_header(header, record_kind)
    try:
        body = canonical_json(header) if non_ascii_keys else orjson.dumps(header, option=_DUMPS)
    except TypeError as exc:
        raise FormatError(f"record header is not canonical JSON: {exc}") from None
    # leaf = SHA-256(0x00 || record bytes), RFC 9162 2.1.1
    leaf = _sha256(LEAF_HASH_PREFIX + body).digest()
    tenant = header.get("tenant")
    return Record(seq, record_kind, request_id, req_seq, ts, tenant, body, leaf, payload)


_TOKENS_KEYS: Final = frozenset(_TYPED_BASE | {"step", "n", "prov"})
_PROVENANCE_LIST: Final = frozenset(PROVENANCE_CODES)


def _plain_tokens(h: dict[str, Any]) -> bool:
    """True when ``h`` is a ``tokens`` header that :func:`_check_header` and the base checks of
    :func:`parse_header` accept, with exactly the fields the recorder writes (the verifier's hot
    path: one function, no calls per field). False means "not sure": the full checks decide."""
    seq, req_seq, step, n, prov = h["seq"], h["req_seq"], h["step"], h["n"], h["prov"]
    payload, prev, log, rid = h["payload"], h["prev"], h["log"], h["request_id"]
    return (
        type(seq) is int
        and type(req_seq) is int
        and type(step) is int
        and type(n) is int
        and 0 <= seq <= MAX_SAFE_INTEGER
        and 0 < req_seq <= MAX_SAFE_INTEGER
        and 0 <= step <= MAX_SAFE_INTEGER
        and 0 <= n <= MAX_SAFE_INTEGER
        and h["v"] == FORMAT_VERSION
        and type(h["v"]) is int
        and type(log) is str
        and log != ""
        and type(rid) is str
        and rid != ""
        and type(h["tenant"]) is str
        and type(prov) is list
        and len(prov) == n
        and set(map(type, prov)) <= {str}
        and _PROVENANCE_LIST.issuperset(prov)
        and type(prev) is str
        and _HEX64.fullmatch(prev) is not None
        and prev != ZERO_HASH
        and (payload is None or (type(payload) is str and _HEX64.fullmatch(payload) is not None))
        and type(h["ts"]) is str
        and _DECIMAL.fullmatch(h["ts"]) is not None
    )


def parse_header(body: bytes) -> dict[str, Any]:
    """Parse and validate stored header bytes.

    Raises :class:`FormatError` unless ``body`` is canonical JSON (re-encoding gives the same
    bytes) holding every required field with its type. The returned dict is the JSON object with
    one conversion: ``ts`` is an ``int``.
    """
    try:
        header = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"record header is not JSON: {exc}") from None
    if type(header) is not dict:
        raise FormatError(f"record header is not a JSON object: {type(header).__name__}")
    if (
        header.get("kind") == "tokens"
        and header.keys() == _TOKENS_KEYS
        and _plain_tokens(header)
        and orjson.dumps(header, option=_DUMPS) == body
    ):
        header["ts"] = int(header["ts"])
        return header
    try:
        v, log, seq, kind_name, ts, payload = (
            header["v"],
            header["log"],
            header["seq"],
            header["kind"],
            header["ts"],
            header["payload"],
        )
        _ = header["request_id"], header["req_seq"], header["prev"]  # present, even if null
    except KeyError as exc:
        raise FormatError(f"header field {exc.args[0]!r} is missing") from None
    if v != FORMAT_VERSION or type(v) is not int:
        raise _bad("v", f"format version {FORMAT_VERSION}", v)
    if type(log) is not str or not log:
        raise _bad("log", "a non-empty string", log)
    if type(seq) is not int or not 0 <= seq <= MAX_SAFE_INTEGER:
        raise _bad("seq", "a non-negative integer", seq)
    kind = _KINDS.get(kind_name) if type(kind_name) is str else None
    if kind is None:
        raise _bad("kind", "one of " + ", ".join(sorted(_KINDS)), kind_name)
    if type(ts) is not str or _DECIMAL.fullmatch(ts) is None:
        raise _bad("ts", "nanoseconds as a decimal string", ts)
    if payload is not None and (type(payload) is not str or _HEX64.fullmatch(payload) is None):
        raise _bad("payload", "null or 64 lowercase hex digits", payload)
    non_ascii_keys = _check_header(header, kind)
    try:
        again = canonical_json(header) if non_ascii_keys else orjson.dumps(header, option=_DUMPS)
    except TypeError as exc:
        raise FormatError(f"record header is not canonical JSON: {exc}") from None
    if again != body:
        raise FormatError("record header bytes are not in canonical form (RFC 8785)")
    header["ts"] = int(ts)
    return header
