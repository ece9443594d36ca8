"""The one sequencer of a log: assigns indices, extends chains and the Merkle frontier.

A log has exactly one writer (docs/DESIGN.md section 3). :class:`LogSequencer` is that writer's
state: the next global index ``seq``, the Merkle frontier, and the head of every open request
chain.
It turns record *intents* (kind, request, payload, fields) into finished
:class:`~auditlog.ledger.Record` values, in order, with no I/O; the caller persists what
:meth:`LogSequencer.drain` hands over, in one transaction, through
:func:`auditlog.store.append_batch`.

Both the recorder's sequencer thread and the auditor API's access log use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from auditlog.crypto import ENCRYPTION_ALG, DataKey, PayloadSealer, wrapped_digest
from auditlog.crypto.envelope import RequestSealer
from auditlog.errors import RecorderError
from auditlog.ledger import (
    ZERO_HASH,
    Checkpoint,
    MerkleFrontier,
    Record,
    RecordKind,
    Signer,
    build_record,
    sign_checkpoint,
)
from auditlog.ledger.tokens_record import TokensTemplate
from auditlog.protect.retention import RetentionPolicy
from auditlog.store import StoredNodeSource, ensure_log, load_log_state, read_request

__all__ = ["ChainHead", "LogSequencer", "PendingBatch"]

_REQUEST_KINDS = frozenset({RecordKind.REQUEST_START, RecordKind.TOKENS, RecordKind.REQUEST_END})


@dataclass(slots=True)
class ChainHead:
    """The last record of an open request chain."""

    req_seq: int
    leaf_hex: str
    tenant: str | None
    cipher: RequestSealer | None = None  # when the request's payloads are sealed (C16)
    num_tokens: int = 0  # tokens recorded in this chain by this process
    template: TokensTemplate | None = None  # its tokens headers' constant parts (append_tokens)


@dataclass(slots=True)
class PendingBatch:
    """Records and subtree nodes built but not yet handed to the store."""

    records: list[Record] = field(default_factory=list)
    nodes: list[tuple[int, int, bytes]] = field(default_factory=list)
    data_keys: list[DataKey] = field(default_factory=list)  # wrapped keys of new requests

    def __len__(self) -> int:
        return len(self.records)


class LogSequencer:
    """Single-writer state of one log (not thread-safe: one thread owns it)."""

    def __init__(
        self,
        *,
        origin: str,
        log_id: int,
        frontier: MerkleFrontier,
        heads: dict[str, ChainHead],
        sealer: PayloadSealer | None = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        self.origin = origin
        self.sealer = sealer
        self.retention = retention
        self.log_id = log_id
        self.frontier = frontier
        self.heads = heads
        self.pending = PendingBatch()

    @classmethod
    def resume(
        cls,
        conn: Connection,
        origin: str,
        *,
        sealer: PayloadSealer | None = None,
        retention: RetentionPolicy | None = None,
    ) -> LogSequencer:
        """Load the log's size, Merkle frontier and open chain heads from the database.

        With a ``sealer``, every request started from now on has its payloads sealed (C16);
        chains left open by a previous process are only closed (no payload), so need no key.
        With a ``retention`` policy, each new request's start records its retention class (C14).
        """
        log_id = ensure_log(conn, origin)
        state = load_log_state(conn, log_id)
        frontier = MerkleFrontier.restore(state.size, StoredNodeSource(conn, log_id))
        heads = {}
        for request_id, (req_seq, leaf) in state.open_chains.items():
            # Chains left open by a previous process: few, read each one's tenant.
            first = read_request(conn, log_id, request_id)[0]
            heads[request_id] = ChainHead(req_seq=req_seq, leaf_hex=leaf.hex(), tenant=first.tenant)
        return cls(
            origin=origin,
            log_id=log_id,
            frontier=frontier,
            heads=heads,
            sealer=sealer,
            retention=retention,
        )

    @property
    def size(self) -> int:
        """Number of records sequenced so far (persisted or pending)."""
        return self.frontier.size

    def append(
        self,
        kind: RecordKind,
        *,
        ts: int,
        request_id: str | None = None,
        tenant: str | None = None,
        payload: bytes | None = None,
        fields: Mapping[str, Any] | None = None,
        trusted: bool = False,
    ) -> Record:
        """Sequence one record: next ``seq``, next ``req_seq`` and ``prev`` for request kinds.

        A ``request.start`` MUST open a new chain; ``tokens`` and ``request.end`` MUST extend an
        open one; ``request.end`` closes it. Violations raise :class:`RecorderError` and sequence
        nothing. ``trusted`` is passed to :func:`~auditlog.ledger.build_record`.
        """
        req_seq: int | None = None
        prev: str | None = None
        head: ChainHead | None = None
        cipher: RequestSealer | None = None
        key: DataKey | None = None
        if kind in _REQUEST_KINDS:
            if request_id is None:
                raise RecorderError(f"a {kind} record needs a request id")
            head = self.heads.get(request_id)
            if kind is RecordKind.REQUEST_START:
                if head is not None:
                    raise RecorderError(f"request {request_id!r} already started in {self.origin}")
                req_seq, prev = 0, ZERO_HASH
                if self.retention is not None and tenant is not None:
                    retention = self.retention.header_field(tenant, ts)
                    fields = {**(fields or {}), "retention": retention}
                if self.sealer is not None:
                    cipher, key, fields = self._new_data_key(request_id, tenant, fields)
            else:
                if head is None:
                    raise RecorderError(
                        f"{kind} for request {request_id!r}, which has no open chain in "
                        f"{self.origin}"
                    )
                req_seq, prev = head.req_seq + 1, head.leaf_hex
                if tenant is None:
                    tenant = head.tenant
                cipher = head.cipher
            if cipher is not None and payload is not None:
                payload = cipher.seal(self.frontier.size, payload)
        if tenant is not None:
            fields = {**fields, "tenant": tenant} if fields else {"tenant": tenant}
        record = build_record(
            log=self.origin,
            seq=self.frontier.size,
            kind=kind,
            request_id=request_id,
            req_seq=req_seq,
            ts=ts,
            prev=prev,
            payload=payload,
            fields=fields or {},
            trusted=trusted,
        )
        nodes = self.frontier.append(record.leaf)
        if nodes:
            self.pending.nodes.extend(nodes)
        self.pending.records.append(record)
        if key is not None:
            self.pending.data_keys.append(key)
        if req_seq is not None and request_id is not None:
            if kind is RecordKind.REQUEST_END:
                del self.heads[request_id]
            elif head is None:
                self.heads[request_id] = ChainHead(req_seq, record.leaf.hex(), tenant, cipher)
            else:
                head.req_seq = req_seq
                head.leaf_hex = record.leaf.hex()
                if kind is RecordKind.TOKENS and fields:
                    head.num_tokens += fields["n"]
        return record

    def append_tokens(
        self,
        request_id: str,
        ts: int,
        step: int,
        payload: bytes,
        n: int,
        prov: Iterable[str],
    ) -> Record:
        """Sequence one ``tokens`` record of an open chain: the recorder's hot path.

        The same record as ``append(RecordKind.TOKENS, ..., trusted=True)`` with fields
        ``step``, ``n`` and ``prov``, built from the chain's template (ledger/tokens_record.py).
        Raises :class:`RecorderError`, sequencing nothing, when the chain is not open. Called
        once per request and step, so it binds nothing by keyword and builds no dict.
        """
        head = self.heads.get(request_id)
        if head is None:
            raise RecorderError(
                f"{RecordKind.TOKENS} for request {request_id!r}, which has no open chain in "
                f"{self.origin}"
            )
        frontier = self.frontier
        seq = frontier.size
        cipher = head.cipher
        if cipher is not None:
            payload = cipher.seal(seq, payload)
        template = head.template
        if template is None:
            template = head.template = TokensTemplate(self.origin, request_id, head.tenant)
        req_seq = head.req_seq + 1
        record = template.build(seq, req_seq, ts, head.leaf_hex, payload, step, n, prov)
        leaf = record.leaf
        nodes = frontier.append(leaf)
        pending = self.pending
        if nodes:
            pending.nodes.extend(nodes)
        pending.records.append(record)
        head.req_seq = req_seq
        head.leaf_hex = leaf.hex()
        head.num_tokens += n
        return record

    def _new_data_key(
        self, request_id: str, tenant: str | None, fields: Mapping[str, Any] | None
    ) -> tuple[RequestSealer, DataKey, dict[str, Any]]:
        """A fresh data key for a new request: its cipher, its wrapped form, and ``fields`` with
        ``enc`` added (the commitment to the wrapped key, docs/FORMAT.md 3.4)."""
        assert self.sealer is not None
        if tenant is None:
            raise RecorderError(f"request {request_id!r} has no tenant to wrap its data key for")
        cipher, key = self.sealer.new_request(self.origin, request_id, tenant)
        enc = {"alg": ENCRYPTION_ALG, "kek": key.kek_id, "dek": wrapped_digest(key.wrapped)}
        return cipher, key, {**(fields or {}), "enc": enc}

    def drain(self) -> PendingBatch:
        """Hand over everything sequenced since the last drain (the caller MUST persist it)."""
        batch, self.pending = self.pending, PendingBatch()
        return batch

    def checkpoint(self, signers: list[Signer]) -> tuple[Checkpoint, str]:
        """Sign the current tree head as a C2SP checkpoint note."""
        if not signers:
            raise RecorderError("no signing key configured for checkpoints")
        cp = Checkpoint(origin=self.origin, size=self.frontier.size, root=self.frontier.root())
        return cp, sign_checkpoint(cp, signers)
