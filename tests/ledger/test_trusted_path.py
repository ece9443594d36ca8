"""The recorder's trusted builders write the same canonical bytes as the checked ones (C7)."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from auditlog.ledger import PROVENANCE_CODES, RecordKind, build_record, parse_header, payload_bytes

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
