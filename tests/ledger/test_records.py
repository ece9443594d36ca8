"""Record headers: building, strict parsing, commitments (C1, C6, C7)."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.errors import FormatError
from auditlog.ledger.records import (
    ZERO_HASH,
    RecordKind,
    build_record,
    parse_header,
    payload_bytes,
)

PAYLOAD = payload_bytes({"token_ids": [450, 29871], "drafts": [450, 1576]})
TOKENS: dict[str, Any] = dict(
    log="log.example/1",
    seq=7,
    kind=RecordKind.TOKENS,
    request_id="req-1",
    req_seq=1,
    ts=1_767_225_600_123_456_789,
    prev="ab" * 32,
    payload=PAYLOAD,
    fields={"tenant": "acme", "step": 3, "n": 2, "prov": ["draft_accepted", "target_recovered"]},
)


def _build(**changes: Any) -> Any:
    return build_record(**{**TOKENS, **changes})


def test_tokens_record_bytes_and_hashes() -> None:
    record = _build()
    assert record.body == (
        b'{"kind":"tokens","log":"log.example/1","n":2,"payload":"'
        + hashlib.sha256(PAYLOAD).hexdigest().encode()
        + b'","prev":"'
        + b"ab" * 32
        + b'","prov":["draft_accepted","target_recovered"],'
        b'"req_seq":1,"request_id":"req-1","seq":7,"step":3,"tenant":"acme",'
        b'"ts":"1767225600123456789","v":1}'
    )
    assert record.leaf == hashlib.sha256(b"\x00" + record.body).digest()
    assert (record.seq, record.kind, record.request_id, record.req_seq, record.tenant) == (
        7,
        RecordKind.TOKENS,
        "req-1",
        1,
        "acme",
    )
    assert record.ts == 1_767_225_600_123_456_789 and record.payload == PAYLOAD


def test_parse_round_trip() -> None:
    header = parse_header(_build().body)
    assert header["ts"] == 1_767_225_600_123_456_789
    assert header["payload"] == hashlib.sha256(PAYLOAD).hexdigest()


def test_field_colliding_with_base_field_is_refused() -> None:
    with pytest.raises(FormatError, match=r"collide with base header fields: \['seq'\]"):
        _build(fields={**TOKENS["fields"], "seq": 1})


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"prev": ZERO_HASH}, "prev"),
        ({"req_seq": 0, "prev": ZERO_HASH}, "0 exactly for request.start"),
        ({"request_id": None}, "request_id"),
        ({"prev": "AB" * 32}, "prev"),
        ({"ts": -1}, "ts"),
        ({"seq": -1}, "seq"),
        ({"log": ""}, "log"),
        ({"kind": "tokenz"}, "kind"),
        ({"fields": {"tenant": "acme", "step": 3, "n": 2, "prov": ["target"]}}, "prov"),
        ({"fields": {"tenant": "acme", "step": 3, "n": 1, "prov": ["guess"]}}, "prov"),
        ({"fields": {"step": 3, "n": 0, "prov": []}}, "tenant"),
        ({"fields": {**TOKENS["fields"], "extra": 0.5}}, "float"),
    ],
)
def test_build_refuses_what_parse_would_refuse(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(FormatError, match=match):
        _build(**changes)


def test_non_request_kinds_have_no_chain_fields() -> None:
    step = build_record(
        log="l",
        seq=0,
        kind=RecordKind.STEP,
        request_id=None,
        req_seq=None,
        ts=1,
        prev=None,
        payload=None,
        fields={"step": 1, "batch": [["a", 2], ["b", 1]], "n": 3},
    )
    assert parse_header(step.body)["batch"] == [["a", 2], ["b", 1]]
    assert step.tenant is None
    with pytest.raises(FormatError, match="must have request_id, req_seq and prev null"):
        build_record(
            log="l",
            seq=0,
            kind=RecordKind.ACCESS,
            request_id="r",
            req_seq=None,
            ts=1,
            prev=None,
            payload=None,
            fields={},
        )
    with pytest.raises(FormatError, match="batch total 3"):
        build_record(
            log="l",
            seq=0,
            kind=RecordKind.STEP,
            request_id=None,
            req_seq=None,
            ts=1,
            prev=None,
            payload=None,
            fields={"step": 1, "batch": [["a", 3]], "n": 4},
        )


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda b: b.replace(b'"n":2', b'"n": 2'), "canonical form"),
        (lambda b: b.replace(b'{"kind"', b'{"v":1,"kind"'), "canonical form"),
        (lambda b: b.replace(b'"seq":7', b'"seq":7.0'), "seq"),
        (lambda b: b.replace(b'"step":3', b'"step":3.5'), "step"),
        (lambda b: b.replace(b'"v":1', b'"v":2'), "format version"),
        (lambda b: b.replace(b'"ts":"1767225600123456789"', b'"ts":1767225600123456789'), "ts"),
        (lambda b: b.replace(b'"ts":"1767225600123456789"', b'"ts":"01767225600123456789"'), "ts"),
        (lambda b: b.replace(b'"request_id":"req-1",', b""), "missing"),
        (lambda b: b[:-1], "not JSON"),
        (lambda b: b.replace(b'"kind":"tokens"', b'"kind":["tokens"]'), "kind"),
        (lambda b: b.replace(b'"prov":["draft_accepted"', b'"prov":[{"a":1}'), "prov"),
        (lambda b: b"[1]", "not a JSON object"),
        (lambda b: b.replace(b'"tenant":"acme"', b'"tenant":"acme","x":1e2'), "float"),
        (
            lambda b: b.replace(b'"tenant":"acme"', b'"tenant":"acme","x":9007199254740992'),
            "canonical JSON|range",
        ),
    ],
)
def test_parse_refuses_non_canonical_or_ill_typed(mutate: Any, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        parse_header(mutate(_build().body))


def test_request_start_and_end_schemas() -> None:
    model = {
        "name": "m",
        "weights_sha256": "a" * 64,
        "tokenizer_sha256": "b" * 64,
        "architecture": "llama",
    }
    start = build_record(
        log="l",
        seq=0,
        kind=RecordKind.REQUEST_START,
        request_id="r",
        req_seq=0,
        ts=5,
        prev=ZERO_HASH,
        payload=payload_bytes({"prompt_token_ids": [1], "prompt_text": "hi"}),
        fields={
            "tenant": "t",
            "principal": "p",
            "client": "c",
            "engine": "e",
            "params": {"seed": 1, "temperature": "0.7", "ñ": True},
            "target": model,
            "draft": None,
        },
    )
    assert parse_header(start.body)["params"]["ñ"] is True
    with pytest.raises(FormatError, match=r"target\.weights_sha256"):
        build_record(
            log="l",
            seq=0,
            kind=RecordKind.REQUEST_START,
            request_id="r",
            req_seq=0,
            ts=5,
            prev=ZERO_HASH,
            payload=None,
            fields={
                "tenant": "t",
                "principal": "p",
                "client": "c",
                "engine": "e",
                "params": {},
                "target": {"name": "m"},
            },
        )
    with pytest.raises(FormatError, match="n_delivered"):
        build_record(
            log="l",
            seq=1,
            kind=RecordKind.REQUEST_END,
            request_id="r",
            req_seq=1,
            ts=6,
            prev=start.leaf.hex(),
            payload=None,
            fields={"tenant": "t", "reason": "stop", "n_generated": 1},
        )


def test_payload_is_committed_by_digest() -> None:
    assert orjson.loads(_build().body)["payload"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert orjson.loads(_build(payload=None).body)["payload"] is None


_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda c: st.one_of(
        st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)
    ),
    max_leaves=12,
)


@given(
    st.dictionaries(
        st.sampled_from([*sorted(TOKENS["fields"]), "kind", "prev", "ts", "v"]),
        _json_values,
        max_size=6,
    )
)
@settings(max_examples=300, deadline=None)
def test_parse_raises_only_format_error_on_mangled_headers(changes: dict[str, Any]) -> None:
    header = {**orjson.loads(_build().body), **changes}
    try:
        body = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return
    with contextlib.suppress(FormatError):
        parse_header(body)


@given(st.binary(max_size=64))
@settings(max_examples=200, deadline=None)
def test_parse_raises_only_format_error_on_random_bytes(body: bytes) -> None:
    with pytest.raises(FormatError):
        parse_header(body)
