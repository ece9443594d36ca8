"""The one chain checker (auditlog.ledger.chain): chain, count, provenance and step rules
(docs/FORMAT.md sections 3.2, 3.3; C1, C6, C11), as verify_log applies them."""

from __future__ import annotations

from typing import Any

import pytest
from ledger_helpers import load_make_golden

from auditlog.ledger import RecordKind, verify_log
from auditlog.ledger.chain import ChainChecker
from auditlog.ledger.report import FindingCode
from auditlog.ledger.tokens_rules import prov_problem as _prov_problem

G = load_make_golden()
SIGNER = G.golden_signer()


@pytest.mark.parametrize(
    ("prov", "ids", "drafts", "problem"),
    [
        (["target", "target"], [1, 2], [], None),
        (["target"], [1], [7], "all target while 1 draft"),
        (["target", "bonus"], [1, 2], [], "mixes target"),
        (["draft_accepted", "target_recovered"], [4, 9], [4, 5], None),
        (["draft_accepted", "draft_accepted", "bonus"], [4, 5, 6], [4, 5], None),
        (["draft_accepted"], [4], [4, 5], None),  # cut short by a stop or max_tokens
        (["draft_accepted", "target_recovered"], [3, 9], [4, 5], "differ from the draft"),
        (["draft_accepted", "draft_accepted"], [4, 5], [4], "2 draft tokens accepted, 1"),
        (["draft_accepted", "target_recovered"], [4, 9], [4], "no proposal was rejected"),
        (["bonus", "draft_accepted"], [1, 2], [2], "at most one final"),
        (["target_recovered", "bonus"], [1, 2], [3], "at most one final"),
        (["bonus"], [1], [], None),
        (["draft_accepted", "draft_accepted", "target_recovered"], [1, 2, 3], [], None),  # vLLM
        (["draft_accepted", "target"], [1, 2], [], "mixes target"),
        (["draft_accepted", "bonus"], None, None, None),  # payload unreadable: shape only
    ],
)
def test_provenance_rules(
    prov: list[str], ids: list[int] | None, drafts: list[int] | None, problem: str | None
) -> None:
    found = _prov_problem(prov, ids, drafts)
    assert (found is None) if problem is None else (found is not None and problem in found)


def _log(
    *,
    n_generated: int = 2,
    n_delivered: int = 2,
    prov: list[str] | None = None,
    drafts: list[int] | None = None,
    batch: list[list[Any]] | None = None,
    payload: dict[str, Any] | None = None,
    tenant_b: str = "acme",
) -> list[Any]:
    log = G.LogBuilder()
    log.start("a", "acme", G.T0, [1], "x")
    log.start("b", "acme", G.T0, [1], "y")
    last, prev, _ = log.heads["b"]
    log.heads["b"] = (last, prev, tenant_b)  # the builder takes a chain's tenant from its head
    for rid, tenant in (("a", "acme"), ("b", tenant_b)):
        log.add(
            RecordKind.TOKENS,
            G.T0 + 1,
            rid=rid,
            tenant=tenant,
            payload=payload or {"token_ids": [5, 6], "drafts": drafts or []},
            step=3,
            n=2,
            prov=prov or ["target", "target"],
        )
    log.add(RecordKind.STEP, G.T0 + 1, step=3, batch=batch or [["a", 2], ["b", 2]], n=4)
    log.end("a", G.T0 + 2, "stop", n_generated, n_delivered)
    log.end("b", G.T0 + 2, "stop", 2, 2)
    return [G.stored(r) for r in log.records]


def _codes(records: list[Any]) -> list[tuple[str, int | None]]:
    report = verify_log(origin=G.ORIGIN, records=records, verifiers=[SIGNER.verifier])
    return [(f.code.value, f.index) for f in report.findings]


def test_consistent_log_has_no_finding() -> None:
    assert _codes(_log()) == []


def test_counts() -> None:
    assert _codes(_log(n_generated=1, n_delivered=1)) == [("end.counts", 5)]
    assert _codes(_log(n_generated=2, n_delivered=3)) == [("end.counts", 5)]


def test_tokens_rules() -> None:
    assert _codes(_log(drafts=[5, 6])) == [("tokens.prov", 2), ("tokens.prov", 3)]
    assert ("tokens.payload", 2) in _codes(_log(payload={"token_ids": [5]}))


def test_step_batch_order_and_tenant() -> None:
    assert _codes(_log(batch=[["b", 2], ["a", 2]])) == [("step.mismatch", 4)]
    assert ("chain.tenant", 3) in _codes(_log(tenant_b="globex"))


def test_resumed_chain_skips_the_count_it_cannot_know() -> None:
    """Spool replay continues chains checked before: n_generated is not compared there."""
    found: list[FindingCode] = []
    checker = ChainChecker(lambda i, code, e, a, m: found.append(code), check_steps=False)
    records = _log(n_generated=7, n_delivered=1)
    head = records[2]  # a's tokens record: a resumes after it
    checker.resume("a", req_seq=1, prev=head.leaf.hex(), tenant="acme")
    from auditlog.ledger import parse_header

    end = records[5]
    checker.check(end.seq, parse_header(end.body), end.leaf, None)
    assert found == []
