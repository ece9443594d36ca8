"""The recorder's trusted builders write the same canonical bytes as the checked ones (C7)."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from auditlog.events import Provenance
from auditlog.ledger import (
    PROVENANCE_CODES,
    ZERO_HASH,
    RecordKind,
    build_record,
    parse_header,
    payload_bytes,
)
from auditlog.ledger.canonical import canonical_json
from auditlog.ledger.tokens_record import TokensTemplate, tokens_payload

ids = st.text(min_size=1, max_size=12)
tokens = st.lists(st.integers(min_value=0, max_value=2**31), max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    request_id=ids,
    tenant=st.text(max_size=8),
    step=st.integers(min_value=0, max_value=2**40),
    token_ids=tokens,
    drafts=tokens,
    ts=st.integers(min_value=0, max_value=10**19),
    data=st.data(),
)
def test_trusted_tokens_record_equals_checked(
    request_id: str,
    tenant: str,
    step: int,
    token_ids: list[int],
    drafts: list[int],
    ts: int,
    data: st.DataObject,
) -> None:
    prov = [data.draw(st.sampled_from(sorted(PROVENANCE_CODES))) for _ in token_ids]
    payload_checked = payload_bytes({"token_ids": token_ids, "drafts": drafts})
    payload_trusted = payload_bytes(
        {"token_ids": tuple(token_ids), "drafts": tuple(drafts)}, trusted=True
    )
    assert payload_trusted == payload_checked
    args = dict(
        log="test.example/trusted",
        seq=3,
        kind=RecordKind.TOKENS,
        request_id=request_id,
        req_seq=2,
        ts=ts,
        prev="ab" * 32,
        payload=payload_checked,
        fields={"step": step, "n": len(token_ids), "prov": prov, "tenant": tenant},
    )
    checked = build_record(**args)  # type: ignore[arg-type]
    trusted = build_record(**args, trusted=True)  # type: ignore[arg-type]
    assert trusted == checked
    parse_header(trusted.body)


@settings(max_examples=100, deadline=None)
@given(batch=st.dictionaries(ids, st.integers(min_value=0, max_value=64), max_size=6))
def test_trusted_step_manifest_equals_checked(batch: dict[str, int]) -> None:
    fields = {
        "step": 9,
        "batch": [[r, n] for r, n in batch.items()],
        "n": sum(batch.values()),
        "passes": 1,
    }
    args = dict(
        log="test.example/trusted",
        seq=0,
        kind=RecordKind.STEP,
        request_id=None,
        req_seq=None,
        ts=1,
        prev=None,
        payload=None,
        fields=fields,
    )
    assert build_record(**args, trusted=True) == build_record(**args)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    log=st.text(min_size=1, max_size=12),
    request_id=ids,
    tenant=st.none() | st.text(max_size=8),
    seq=st.integers(min_value=0, max_value=2**53 - 1),
    req_seq=st.integers(min_value=1, max_value=2**53 - 1),
    step=st.integers(min_value=0, max_value=2**53 - 1),
    token_ids=tokens,
    drafts=tokens,
    ts=st.integers(min_value=0, max_value=10**20 - 1),
    data=st.data(),
)
def test_tokens_template_equals_checked(
    log: str,
    request_id: str,
    tenant: str | None,
    seq: int,
    req_seq: int,
    step: int,
    token_ids: list[int],
    drafts: list[int],
    ts: int,
    data: st.DataObject,
) -> None:
    """C7: the per-chain template (the recorder's hot path) writes the checked builder's bytes,
    for any log, request id and tenant (escapes, non-ASCII) and any integers in range."""
    prov = [data.draw(st.sampled_from(sorted(PROVENANCE_CODES))) for _ in token_ids]
    payload = payload_bytes({"token_ids": token_ids, "drafts": drafts})
    prev = data.draw(
        st.text("0123456789abcdef", min_size=64, max_size=64).filter(lambda h: h != ZERO_HASH)
    )
    fields: dict[str, object] = {"step": step, "n": len(token_ids), "prov": prov}
    if tenant is not None:
        fields["tenant"] = tenant
    checked = build_record(
        trusted=tenant is None,  # the checked builder requires a tenant (FORMAT.md 3.3)
        log=log,
        seq=seq,
        kind=RecordKind.TOKENS,
        request_id=request_id,
        req_seq=req_seq,
        ts=ts,
        prev=prev,
        payload=payload,
        fields=fields,
    )
    fast = TokensTemplate(log, request_id, tenant).build(
        seq=seq,
        req_seq=req_seq,
        ts=ts,
        prev=prev,
        payload=payload,
        step=step,
        n=len(token_ids),
        prov=[Provenance(p) for p in prov],
    )
    assert fast == checked
    if tenant is not None:
        assert parse_header(fast.body)["tenant"] == tenant


@settings(max_examples=300, deadline=None)
@given(
    token_ids=st.lists(st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1), max_size=8),
    drafts=st.lists(st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1), max_size=8),
    as_tuples=st.booleans(),
)
def test_tokens_payload_equals_canonical(
    token_ids: list[int], drafts: list[int], as_tuples: bool
) -> None:
    """The recorder's token payload bytes are the canonical ones, for lists and tuples."""
    obj = {"token_ids": token_ids, "drafts": drafts}
    ids, proposed = (tuple(token_ids), tuple(drafts)) if as_tuples else (token_ids, drafts)
    fast = tokens_payload(ids, proposed)
    assert fast == canonical_json(obj) == payload_bytes(obj, trusted=True)


@pytest.mark.parametrize("bad", [2**53, -(2**53), 2**64])
def test_tokens_payload_refuses_integers_out_of_range(bad: int) -> None:
    """An id beyond ±(2^53 − 1) is a TypeError (the recorder then fails the request alone),
    never bytes that a verifier would refuse; other types are the gate's to refuse (trusted)."""
    with pytest.raises(TypeError):
        tokens_payload([1, bad], [])
    with pytest.raises(TypeError):
        tokens_payload([], [bad])
