"""The verifier catches every C8 tampering, rollbacks (C10) and incomplete steps (C11)."""

from __future__ import annotations

import dataclasses

import pytest
from ledger_helpers import load_make_golden

from auditlog.ledger import (
    Checkpoint,
    FindingCode,
    RecordKind,
    Report,
    Signer,
    StoredRecord,
    build_record,
    leaf_hash,
    sign_checkpoint,
    verify_log,
)
from auditlog.ledger.verify import MAX_FINDINGS_PER_CODE, Severity, Verdict

G = load_make_golden()
SIGNER: Signer = G.golden_signer()
RECORDS, CHECKPOINTS = G.golden_log()
WITNESSED: str = CHECKPOINTS[-1]


def _verify(
    records: list[StoredRecord],
    checkpoints: list[str] | None = None,
    witnessed: str | None = WITNESSED,
) -> Report:
    return verify_log(
        origin=G.ORIGIN,
        records=records,
        checkpoints=CHECKPOINTS if checkpoints is None else checkpoints,
        verifiers=[SIGNER.verifier],
        witnessed=witnessed,
    )


def _codes(report: Report) -> list[tuple[str, int | None]]:
    return [(f.code.value, f.index) for f in report.findings]


def _first_error(report: Report) -> tuple[str, int | None]:
    errors = [f for f in report.findings if f.severity is Severity.ERROR]
    first = min(errors, key=lambda f: (f.index is None, f.index or 0))
    return first.code.value, first.index


def test_valid_log() -> None:
    report = _verify(RECORDS)
    assert report.ok and report.findings == []
    assert report.verdict is Verdict.INTACT and report.anchored_size == 11
    assert report.counts == {
        "records": 11,
        "requests_started": 2,
        "requests_ended": 2,
        "open_chains": 0,
        "steps": 2,
        "tokens": 7,
        "checkpoints": 2,
        "payloads": 6,
        "payloads_absent": 0,
    }


def test_c8_field_edited() -> None:
    rs = list(RECORDS)
    rs[5] = dataclasses.replace(rs[5], body=rs[5].body.replace(b'"step":1', b'"step":2'))
    report = _verify(rs)
    assert not report.ok and _first_error(report) == ("leaf.mismatch", 5)
    assert report.first(FindingCode.CHECKPOINT_ROOT) is not None


def test_c8_field_edited_and_leaf_column_recomputed() -> None:
    rs = list(RECORDS)
    body = (
        rs[2]
        .body.replace(b'"n":2', b'"n":1')
        .replace(b'"draft_accepted","target_recovered"', b'"draft_accepted"')
    )
    rs[2] = dataclasses.replace(rs[2], body=body, leaf=leaf_hash(body))
    report = _verify(rs)
    # the next record of the same request no longer links to it; the step no longer adds up
    assert ("chain.prev", 6) in _codes(report)
    assert ("step.mismatch", 4) in _codes(report)
    assert not report.ok


def test_c8_record_deleted() -> None:
    report = _verify(RECORDS[:3] + RECORDS[4:])
    assert _first_error(report) == ("seq.mismatch", 3)
    assert "expected seq 3, got 4: a record is missing" in report.findings[0].message


def test_c8_record_inserted() -> None:
    extra = dataclasses.replace(RECORDS[2])
    report = _verify([*RECORDS[:3], extra, *RECORDS[3:]])
    assert _first_error(report) == ("seq.mismatch", 3)
    assert "inserted or reordered" in report.first(FindingCode.SEQ_MISMATCH).message  # type: ignore[union-attr]


def test_c8_records_reordered() -> None:
    rs = list(RECORDS)
    rs[5], rs[6] = rs[6], rs[5]
    report = _verify(rs)
    assert _first_error(report) == ("seq.mismatch", 5)


def test_c8_chain_cut() -> None:
    # a tokens record removed from the middle of req-a's chain, the log renumbered by a forger
    # who can rebuild headers but not the chain links of later records
    rs = [r for r in RECORDS if not (r.request_id == "req-a" and r.req_seq == 1)]
    report = _verify(rs, checkpoints=[], witnessed=None)
    assert ("chain.req_seq", 5) in _codes(report) and ("chain.prev", 5) in _codes(report)


def test_c8_tail_truncated_against_checkpoint() -> None:
    report = _verify(RECORDS[:-3], witnessed=None)
    finding = report.first(FindingCode.CHECKPOINT_TRUNCATED)
    assert finding is not None and finding.index == 8
    assert "commits to 11 records, the log has 8" in finding.message
    assert report.first(FindingCode.CHAIN_OPEN) is not None


def test_c8_index_column_edited_to_hide_a_record() -> None:
    rs = list(RECORDS)
    rs[1] = dataclasses.replace(rs[1], tenant="acme")
    rs[3] = dataclasses.replace(rs[3], request_id="req-zzz")
    report = _verify(rs)
    assert _codes(report) == [("column.mismatch", 1), ("column.mismatch", 3)]
    assert "index column tenant is 'acme', header says 'globex'" in report.findings[0].message


@pytest.mark.parametrize("column", ["seq", "kind", "req_seq", "ts"])
def test_every_index_column_is_checked(column: str) -> None:
    rs = list(RECORDS)
    value = {"seq": 99, "kind": "access", "req_seq": 5, "ts": 1}[column]
    rs[2] = dataclasses.replace(rs[2], **{column: value})
    assert _codes(_verify(rs)) == [("column.mismatch", 2)]


def test_payload_edited_or_deleted() -> None:
    """An absent payload is a failure: no signed erasure record kind exists yet (FORMAT.md 3.4)."""
    rs = list(RECORDS)
    rs[0] = dataclasses.replace(rs[0], payload=b'{"prompt_text":"other"}')
    assert _codes(_verify(rs)) == [("payload.mismatch", 0)]
    rs[0] = dataclasses.replace(rs[0], payload=None)
    report = _verify(rs)
    assert not report.ok and _codes(report) == [("payload.absent", 0)]
    assert report.first(FindingCode.PAYLOAD_ABSENT).severity is Severity.ERROR  # type: ignore[union-attr]
    rs[4] = dataclasses.replace(rs[4], payload=b"{}")
    assert ("payload.unexpected", 4) in _codes(_verify(rs))


def test_checkpoint_forged_or_signed_by_unknown_key() -> None:
    stranger = Signer.generate(G.ORIGIN)
    cp = Checkpoint(origin=G.ORIGIN, size=11, root=b"\x00" * 32)
    report = _verify(RECORDS, checkpoints=[sign_checkpoint(cp, [stranger])])
    assert _codes(report) == [("checkpoint.invalid", None)]
    assert "no signature by a trusted key" in report.findings[0].message
    forged = CHECKPOINTS[0].replace("\n5\n", "\n6\n", 1)
    assert _codes(_verify(RECORDS, checkpoints=[forged])) == [("checkpoint.invalid", None)]
    assert "bad signature" in _verify(RECORDS, checkpoints=[forged]).findings[0].message


def test_checkpoint_signed_by_trusted_key_over_wrong_root() -> None:
    cp = Checkpoint(origin=G.ORIGIN, size=5, root=b"\x00" * 32)
    report = _verify(RECORDS, checkpoints=[sign_checkpoint(cp, [SIGNER])])
    assert _codes(report) == [("checkpoint.root", 4)]


def test_consistent_rewrite_caught_by_witness() -> None:
    rs, cs = G.golden_log(prompt_b="rewritten")
    assert _verify(rs, checkpoints=cs, witnessed=None).ok  # internally consistent
    report = _verify(rs, checkpoints=cs, witnessed=WITNESSED)
    assert _codes(report) == [("witness.rewrite", 10)]
    assert "rolled back or rewritten" in report.findings[0].message


def test_rollback_caught_by_witness() -> None:
    report = _verify(RECORDS[:5], checkpoints=CHECKPOINTS[:1])
    assert ("witness.rollback", 5) in _codes(report)


def test_witness_note_must_be_trusted() -> None:
    stranger = Signer.generate(G.ORIGIN)
    cp = Checkpoint(origin=G.ORIGIN, size=2, root=b"\x00" * 32)
    report = _verify(RECORDS, witnessed=sign_checkpoint(cp, [stranger]))
    assert _codes(report) == [("witness.invalid", None)]


def _builder_with_step(
    runs: list[tuple[str, list[int]]], batch: list[list[object]]
) -> list[StoredRecord]:
    log = G.LogBuilder()
    for rid, _ in runs:
        log.start(rid, "acme", G.T0, [1], "x")
    for rid, tokens in runs:
        log.add(
            RecordKind.TOKENS,
            G.T0 + 1,
            rid=rid,
            payload={"token_ids": tokens, "drafts": []},
            step=0,
            n=len(tokens),
            prov=["target"] * len(tokens),
        )
    log.add(RecordKind.STEP, G.T0 + 1, step=0, batch=batch, n=sum(int(n) for _, n in batch))  # type: ignore[call-overload]
    return [G.stored(r) for r in log.records]


def test_c11_step_reconciles() -> None:
    ok = _builder_with_step([("a", [1, 2]), ("b", [3])], [["a", 2], ["b", 1]])
    report = verify_log(origin=G.ORIGIN, records=ok, verifiers=[SIGNER.verifier])
    assert report.ok and _codes(report) == [("chain.open", None), ("chain.open", None)]
    missing = _builder_with_step([("a", [1, 2])], [["a", 2], ["b", 1]])
    report = verify_log(origin=G.ORIGIN, records=missing, verifiers=[SIGNER.verifier])
    assert ("step.mismatch", 2) in _codes(report)
    assert "missing ['b']" in report.first(FindingCode.STEP_MISMATCH).message  # type: ignore[union-attr]
    wrong_count = _builder_with_step([("a", [1, 2]), ("b", [3])], [["a", 1], ["b", 1]])
    report = verify_log(origin=G.ORIGIN, records=wrong_count, verifiers=[SIGNER.verifier])
    assert "different counts ['a']" in report.first(FindingCode.STEP_MISMATCH).message  # type: ignore[union-attr]


def test_c11_tokens_without_manifest() -> None:
    rs = [r for r in RECORDS if r.kind != "step"]
    report = verify_log(origin=G.ORIGIN, records=rs, verifiers=[SIGNER.verifier])
    assert ("step.unreconciled", 2) in _codes(report)


def test_record_after_end_and_restarted_chain() -> None:
    log = G.LogBuilder()
    log.start("r", "t", G.T0, [1], "x")
    log.end("r", G.T0 + 1, "stop", 0, 0)
    late = build_record(
        log=G.ORIGIN,
        seq=2,
        kind=RecordKind.REQUEST_END,
        request_id="r",
        req_seq=2,
        ts=G.T0 + 2,
        prev=log.records[-1].leaf.hex(),
        payload=None,
        fields={"tenant": "t", "reason": "stop", "n_generated": 0, "n_delivered": 0},
    )
    rs = [G.stored(r) for r in [*log.records, late]]
    report = verify_log(origin=G.ORIGIN, records=rs, verifiers=[SIGNER.verifier])
    assert _codes(report) == [("chain.not_open", 2)]


def test_wrong_origin_and_garbage_header() -> None:
    report = verify_log(origin="other/log", records=RECORDS[:1], verifiers=[SIGNER.verifier])
    assert ("header.log", 0) in _codes(report)
    garbage = dataclasses.replace(RECORDS[0], body=b"not json", leaf=leaf_hash(b"not json"))
    report = _verify([garbage, *RECORDS[1:]], checkpoints=[], witnessed=None)
    assert _codes(report)[0] == ("header.invalid", 0)


def test_findings_are_capped_per_code() -> None:
    rs = [dataclasses.replace(RECORDS[0], tenant="x") for _ in range(MAX_FINDINGS_PER_CODE + 5)]
    report = verify_log(origin=G.ORIGIN, records=rs, verifiers=[SIGNER.verifier])
    column = [f for f in report.findings if f.code is FindingCode.COLUMN_MISMATCH]
    assert len(column) == MAX_FINDINGS_PER_CODE
    assert report.suppressed[FindingCode.COLUMN_MISMATCH] == 5 and not report.ok


def test_progress_is_reported() -> None:
    seen: list[int] = []
    verify_log(origin=G.ORIGIN, records=RECORDS, verifiers=[SIGNER.verifier], progress=seen.append)
    assert seen == [11]
