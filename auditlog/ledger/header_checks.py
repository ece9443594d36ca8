"""Header checks shared by :func:`~auditlog.ledger.records.build_record` and
:func:`~auditlog.ledger.header_parse.parse_header`: per-kind required fields and their types, the
request-chain fields, and the canonical subset for every other field (docs/FORMAT.md section 3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from auditlog.errors import FormatError
from auditlog.ledger.canonical import MAX_SAFE_INTEGER, check_canonical_subset
from auditlog.ledger.record_format import (
    BASE_FIELDS,
    PROVENANCE_CODES,
    REQUEST_KINDS,
    ZERO_HASH,
    RecordKind,
)

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
