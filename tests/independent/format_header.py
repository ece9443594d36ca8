"""Header validation of the independent verifier: docs/FORMAT.md sections 3.1 and 3.3
(``header.invalid``), written from the document alone."""

from __future__ import annotations

import re
from typing import Any

from format_primitives import FormatError, parse_canonical

KINDS = ("request.start", "tokens", "request.end", "step", "access", "admin", "erasure")
REASONS = ("stop", "length", "abort", "error", "interrupted")
PROV = ("target", "draft_accepted", "target_recovered", "bonus")
_TS = re.compile(r"^(0|[1-9][0-9]{0,19})\Z")
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]*)\Z")
MODEL_REF = ("architecture", "name", "tokenizer_sha256", "weights_sha256")


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise FormatError(what)


def _int(v: Any, low: int | None = 0) -> bool:
    return type(v) is int and (low is None or v >= low)


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _hex64(v: Any) -> bool:
    return isinstance(v, str) and _HEX64.match(v) is not None


def check_header(body: bytes) -> dict[str, Any]:
    """The parsed header, or FormatError."""
    h = parse_canonical(body)
    _need(isinstance(h, dict), "header is not an object")
    for name in ("v", "log", "seq", "kind", "request_id", "req_seq", "ts", "prev", "payload"):
        _need(name in h, f"missing {name}")
    _need(h["v"] == 1 and type(h["v"]) is int, "v")
    _need(_str(h["log"]) and h["log"] != "", "log")
    _need(_int(h["seq"]), "seq")
    _need(h["kind"] in KINDS, "kind")
    _need(_str(h["ts"]) and _TS.match(h["ts"]) is not None, "ts")
    _need(h["payload"] is None or _hex64(h["payload"]), "payload")
    if h["kind"] in KINDS[:3]:
        _need(_str(h["request_id"]), "request_id")
        _need(_int(h["req_seq"]), "req_seq")
        _need(_hex64(h["prev"]), "prev")
        _need(_str(h.get("tenant")), "tenant")
    else:
        _need(h["request_id"] is None and h["req_seq"] is None, "request_id")
        _need(h["prev"] is None, "prev")
    _need("tenant" not in h or _str(h["tenant"]), "tenant")
    _KIND_CHECKS.get(h["kind"], lambda _: None)(h)
    return h


def _model(v: Any) -> bool:
    return isinstance(v, dict) and all(_str(v.get(k)) for k in MODEL_REF)


def _start(h: dict[str, Any]) -> None:
    for name in ("principal", "client", "engine"):
        _need(_str(h.get(name)), name)
    _need("clock" not in h or _str(h["clock"]), "clock")
    _need(isinstance(h.get("params"), dict), "params")
    _need(_model(h.get("target")), "target")
    _need(h.get("draft") is None or _model(h["draft"]), "draft")
    if "enc" in h:
        enc = h["enc"]
        _need(isinstance(enc, dict) and set(enc) == {"alg", "kek", "dek"}, "enc")
        _need(enc["alg"] == "A256GCM" and _str(enc["kek"]) and _hex64(enc["dek"]), "enc")
    if "retention" in h:
        r = h["retention"]
        _need(isinstance(r, dict) and set(r) == {"class", "legal", "until"}, "retention")
        _need(_str(r["class"]) and isinstance(r["legal"], bool), "retention")
        _need(_str(r["until"]) and _TS.match(r["until"]) is not None, "retention")


def _tokens(h: dict[str, Any]) -> None:
    _need(_int(h.get("step"), None) and _int(h.get("n")), "step/n")
    prov = h.get("prov")
    _need(isinstance(prov, list) and len(prov) == h["n"], "prov")
    _need(all(p in PROV for p in prov), "prov")


def _end(h: dict[str, Any]) -> None:
    _need(h.get("reason") in REASONS, "reason")
    for name in ("n_generated", "n_delivered"):
        _need(name in h and (h[name] is None or _int(h[name])), name)
    _need("error" not in h or _str(h["error"]), "error")


def _step(h: dict[str, Any]) -> None:
    _need(_int(h.get("step")) and _int(h.get("n")), "step/n")
    batch = h.get("batch")
    _need(isinstance(batch, list), "batch")
    for pair in batch:
        ok = isinstance(pair, list) and len(pair) == 2 and _str(pair[0]) and _int(pair[1])
        _need(ok, "batch pair")
    _need("passes" not in h or _int(h["passes"]), "passes")


def _erasure(h: dict[str, Any]) -> None:
    for name in ("principal", "reason", "legal_basis"):
        _need(_str(h.get(name)) and h[name] != "", name)
    erased = h.get("erased")
    _need(isinstance(erased, list) and len(erased) > 0, "erased")
    for e in erased:
        _need(isinstance(e, dict) and _str(e.get("log")) and _str(e.get("request_id")), "erased")


_KIND_CHECKS = {
    "request.start": _start,
    "tokens": _tokens,
    "request.end": _end,
    "step": _step,
    "erasure": _erasure,
}
