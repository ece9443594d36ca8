"""The per-request chain and count rules: the one checker used by ``auditlog verify``
(:mod:`auditlog.ledger.verify`), ``auditlog verify-bundle`` (:mod:`auditlog.bundle.verify`) and
spool replay (:mod:`auditlog.recorder.spool`), so the three cannot disagree about "intact".

Pure: parsed headers (:func:`~auditlog.ledger.records.parse_header`), leaf hashes and payload bytes
in, findings out through a callback ``report(index, code, expected, actual, message)``. The rules
(docs/FORMAT.md sections 3.2, 3.3 and 7, steps 6 and 7):

- chains: ``request.start`` opens a request (a request id opens at most once per log); every
  other record of it extends its open chain with ``req_seq`` = previous + 1, ``prev`` = leaf of
  the previous record and the chain's ``tenant``; ``request.end`` closes it;
- ``tokens``: a readable payload holds ``n`` token ids and a list of draft proposals; ``prov`` is
  either all ``target`` (plain decoding: then no draft was proposed) or ``draft_accepted`` k times
  followed by at most one ``target_recovered`` or ``bonus``; when proposals are recorded, with
  k <= proposals, the k accepted tokens equal to the first k proposals, and ``target_recovered``
  only after a rejected proposal (k < proposals);
- ``request.end``: ``n_generated`` (when not null) equals the tokens the chain recorded, and
  ``n_delivered`` <= ``n_generated``;
- steps (logs only): the ``tokens`` records of step s since its previous manifest are exactly the
  manifest's ``batch``, in the same order; ``passes``, when present, is a non-negative integer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auditlog.ledger.chain_steps import OpenStep, StepRules
from auditlog.ledger.report import FindingCode
from auditlog.ledger.tokens_rules import TokensPayload, prov_problem, read_tokens_payload

__all__ = ["ChainChecker", "Deferred", "OpenChain", "OpenStep", "ReportFn"]

#: ``report(index, code, expected, actual, message)``: where a finding goes.
ReportFn = Callable[[int | None, FindingCode, object, object, str], None]


@dataclass(slots=True)
class OpenChain:
    """An open request chain: what its next record must carry."""

    next_req_seq: int
    prev: str  # hex leaf hash of the chain's last record
    tenant: str | None
    num_tokens: int | None  # tokens recorded so far; None when resumed without its history


#: A record whose chain began before the range that holds it: (index, header, leaf, payload).
Deferred = tuple[int, dict[str, Any], bytes, bytes | None]


_NO_PAYLOAD: TokensPayload = (None, None)


class ChainChecker(StepRules):
    """Feed records in log order with :meth:`check`, then call :meth:`finish` once.

    ``check_steps`` is False where step manifests are not part of the input (a bundle holds one
    request's chain only).

    ``ranged=True`` checks one range of a log whose earlier records it has not seen
    (:mod:`auditlog.ledger.stitch` joins the ranges): a record of a request not started in the
    range is kept in ``deferred`` instead of checked, the first start of each request id goes to
    ``starts``, and the first manifest of each step is checked only against the tokens records
    of the range (``first_manifests``, or ``deferred_manifests`` when they differ from its batch).
    """

    def __init__(self, report: ReportFn, *, check_steps: bool = True, ranged: bool = False) -> None:
        self.report = report
        self.check_steps = check_steps
        self.ranged = ranged
        self.chains: dict[str, OpenChain] = {}
        self.ended: set[str] = set()  # a request id is used once per log (O(requests) memory)
        self.open_steps: dict[int, OpenStep] = {}
        self.num_started = self.num_ended = self.num_steps = self.num_tokens = 0
        self.deferred: list[Deferred] = []
        self.starts: list[tuple[int, str]] = []
        self.first_manifests: dict[int, int] = {}  # step -> index; matched the range's records
        self.deferred_manifests: list[tuple[int, dict[str, Any], list[list[Any]]]] = []
        self.closed_steps: set[int] = set()

    def resume(self, request_id: str, *, req_seq: int, prev: str, tenant: str | None) -> None:
        """Continue a chain whose earlier records were checked before (spool replay)."""
        self.chains[request_id] = OpenChain(req_seq + 1, prev, tenant, None)

    def is_open(self, request_id: str) -> bool:
        return request_id in self.chains

    def check(self, index: int, h: dict[str, Any], leaf: bytes, payload: bytes | None) -> None:
        """Check one record; ``h`` is its parsed header, ``leaf`` its (recomputed) leaf hash."""
        kind, rid = h["kind"], h["request_id"]
        if kind == "tokens":  # the hot path: most records are tokens records (no calls here)
            n = h["n"]
            self.num_tokens += n
            if self.check_steps:  # the step entry (C11)
                step = h["step"]
                pending = self.open_steps.get(step)
                if pending is None:
                    pending = self.open_steps[step] = (index, [], set())
                if rid in pending[2]:
                    self._second_entry(index, step, rid)
                pending[2].add(rid)
                pending[1].append([rid, n])
            chain = self.chains.get(rid)
            if chain is not None:
                self._extend(index, rid, chain, h, leaf, payload)
            elif self.ranged and rid not in self.ended:
                self.deferred.append((index, h, leaf, payload))
            else:
                self._open_chain(index, rid, "tokens")
            return
        if rid is None:
            if kind == "step" and self.check_steps:
                self._manifest(index, h)
            return
        if kind == "request.start":
            self._start(index, rid, h, leaf)
            return
        if self.ranged and rid not in self.chains and rid not in self.ended:
            self.deferred.append((index, h, leaf, payload))
            return
        self.end_chain(index, rid, h)

    def end_chain(self, index: int, rid: str, h: dict[str, Any]) -> None:
        """The chain part of a ``request.end`` record."""
        chain = self._open_chain(index, rid, h["kind"])
        if chain is not None:
            self._link(index, rid, chain, h)
            self._end(index, rid, chain, h)

    def _open_chain(self, index: int, rid: str, kind: str) -> OpenChain | None:
        chain = self.chains.get(rid)
        if chain is None:
            self.report(
                index,
                FindingCode.CHAIN_NOT_OPEN,
                "an open request",
                rid,
                f"record {index}: {kind} for request {rid!r}, which is not open (its start "
                f"is missing, or it already ended)",
            )
        return chain

    def finish(self) -> None:
        """Report chains left open (warnings) and tokens records with no manifest."""
        for rid, chain in self.chains.items():
            self.report(
                None,
                FindingCode.CHAIN_OPEN,
                "request.end",
                f"{chain.next_req_seq} records",
                f"request {rid!r} has no request.end (open chain of {chain.next_req_seq} records)",
            )
        for step, (first, _, _) in self.open_steps.items():
            self.report(
                first,
                FindingCode.STEP_UNRECONCILED,
                f"a manifest of step {step}",
                "none",
                f"record {first}: tokens records of step {step} have no step manifest after them",
            )

    # -- chains ---------------------------------------------------------------------------------

    def restarted(self, index: int, rid: str) -> None:
        """A request id started again: two requests would share one trail."""
        state = "after its chain ended" if rid in self.ended else "while its chain is open"
        self.report(
            index,
            FindingCode.CHAIN_RESTARTED,
            "a new request id",
            rid,
            f"record {index}: request id {rid!r} started again {state}: two requests would "
            f"share one trail",
        )

    def _start(self, index: int, rid: str, h: dict[str, Any], leaf: bytes) -> None:
        self.num_started += 1
        if self.ranged and rid not in self.ended and rid not in self.chains:
            self.starts.append((index, rid))
        if rid in self.ended or rid in self.chains:
            self.restarted(index, rid)
        clock = h.get("clock")
        if clock is not None and type(clock) is not str:
            self.report(index, FindingCode.HEADER_INVALID, "a string", clock, "clock: not a string")
        self.chains[rid] = OpenChain(1, leaf.hex(), h.get("tenant"), 0)

    def _link(self, index: int, rid: str, chain: OpenChain, h: dict[str, Any]) -> None:
        req_seq, prev, tenant = h["req_seq"], h["prev"], h.get("tenant")
        if req_seq != chain.next_req_seq:
            self.report(
                index,
                FindingCode.CHAIN_REQ_SEQ,
                chain.next_req_seq,
                req_seq,
                f"record {index}: request {rid!r}: req_seq mismatch: expected "
                f"{chain.next_req_seq}, got {req_seq}: its chain is cut",
            )
        if prev != chain.prev:
            self.report(
                index,
                FindingCode.CHAIN_PREV,
                chain.prev,
                prev,
                f"record {index}: request {rid!r}: prev does not match the leaf of its previous "
                f"record: expected {chain.prev}, got {prev}",
            )
        if tenant != chain.tenant:
            self.report(
                index,
                FindingCode.CHAIN_TENANT,
                chain.tenant,
                tenant,
                f"record {index}: request {rid!r}: tenant mismatch: expected {chain.tenant!r}, "
                f"got {tenant!r}",
            )

    def _end(self, index: int, rid: str, chain: OpenChain, h: dict[str, Any]) -> None:
        self.num_ended += 1
        del self.chains[rid]
        self.ended.add(rid)
        generated, delivered = h["n_generated"], h["n_delivered"]
        if generated is not None and chain.num_tokens is not None and generated != chain.num_tokens:
            self.report(
                index,
                FindingCode.END_COUNTS,
                chain.num_tokens,
                generated,
                f"record {index}: request {rid!r}: n_generated is {generated}, its tokens "
                f"records hold {chain.num_tokens} tokens",
            )
        if generated is not None and delivered is not None and delivered > generated:
            self.report(
                index,
                FindingCode.END_COUNTS,
                f"n_delivered <= {generated}",
                delivered,
                f"record {index}: request {rid!r}: n_delivered {delivered} exceeds n_generated "
                f"{generated}",
            )

    # -- tokens ---------------------------------------------------------------------------------

    def tokens_chain(
        self, index: int, h: dict[str, Any], leaf: bytes, payload: bytes | None
    ) -> None:
        """The chain part of a ``tokens`` record (its step was accounted for in its range)."""
        rid = h["request_id"]
        chain = self._open_chain(index, rid, "tokens")
        if chain is not None:
            self._extend(index, rid, chain, h, leaf, payload)

    def _extend(
        self,
        index: int,
        rid: str,
        chain: OpenChain,
        h: dict[str, Any],
        leaf: bytes,
        payload: bytes | None,
    ) -> None:
        req_seq = h["req_seq"]
        if (
            req_seq != chain.next_req_seq
            or h["prev"] != chain.prev
            or h.get("tenant") != chain.tenant
        ):
            self._link(index, rid, chain, h)
        n = h["n"]
        if chain.num_tokens is not None:
            chain.num_tokens += n
        chain.next_req_seq, chain.prev = req_seq + 1, leaf.hex()
        read = _NO_PAYLOAD if payload is None else read_tokens_payload(payload, n)
        if read is None:
            read = self._bad_payload(index, rid, n, payload)
        prov = h["prov"]
        problem = prov_problem(prov, *read)
        if problem is not None:
            self.report(
                index,
                FindingCode.TOKENS_PROV,
                "provenance consistent with the draft proposals",
                prov,
                f"record {index}: request {rid!r}: {problem}",
            )

    def _bad_payload(self, index: int, rid: str, n: int, payload: Any) -> TokensPayload:
        self.report(
            index,
            FindingCode.TOKENS_PAYLOAD,
            f'{{"token_ids": [{n} integers], "drafts": [integers]}}',
            payload[:80],
            f"record {index}: request {rid!r}: the tokens payload does not hold {n} token ids "
            f"and a list of draft proposals",
        )
        return None, None
