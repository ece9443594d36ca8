"""Build real ledger records (``build_record``) for the store tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auditlog.ledger.records import Record, RecordKind, build_record, payload_bytes

TS0 = 1_700_000_000_000_000_000
MODEL_REF = {
    "name": "demo-target",
    "weights_sha256": "ab" * 32,
    "tokenizer_sha256": "cd" * 32,
    "architecture": "llama",
}


@dataclass
class TrailBuilder:
    """Appends records to one log in seq order, keeping each request's chain head."""

    log: str
    tenant: str = "tenant-a"
    seq: int = 0
    step_id: int = 0
    heads: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)

    def _add(
        self, kind: RecordKind, request_id: str | None, payload: Any, fields: dict[str, Any]
    ) -> Record:
        if request_id is None:
            req_seq, prev = None, None
        elif kind is RecordKind.REQUEST_START:
            req_seq, prev = 0, "0" * 64
        else:
            last_seq, last_leaf = self.heads[request_id]
            req_seq, prev = last_seq + 1, last_leaf.hex()
        record = build_record(
            log=self.log,
            seq=self.seq,
            kind=kind,
            request_id=request_id,
            req_seq=req_seq,
            ts=TS0 + self.seq * 1000,
            prev=prev,
            payload=None if payload is None else payload_bytes(payload),
            fields=fields,
        )
        if request_id is not None:
            self.heads[request_id] = (record.req_seq or 0, record.leaf)
        self.seq += 1
        self.records.append(record)
        return record

    def start(self, request_id: str) -> Record:
        return self._add(
            RecordKind.REQUEST_START,
            request_id,
            {"prompt_token_ids": [1, 2, 3], "prompt_text": "hello ünïcode"},
            {
                "tenant": self.tenant,
                "principal": "alice",
                "client": "key-1",
                "engine": "auditlog-ref 0.1",
                "params": {"temperature": "0", "seed": 7},
                "target": MODEL_REF,
            },
        )

    def tokens(self, request_id: str, n: int) -> Record:
        self.step_id += 1
        return self._add(
            RecordKind.TOKENS,
            request_id,
            {"token_ids": list(range(n))},
            {"tenant": self.tenant, "step": self.step_id, "n": n, "prov": ["target"] * n},
        )

    def end(self, request_id: str) -> Record:
        return self._add(
            RecordKind.REQUEST_END,
            request_id,
            None,
            {"tenant": self.tenant, "reason": "stop", "n_generated": 2, "n_delivered": 2},
        )

    def step(self, batch: list[tuple[str, int]]) -> Record:
        self.step_id += 1
        return self._add(
            RecordKind.STEP,
            None,
            None,
            {
                "step": self.step_id,
                "batch": [list(b) for b in batch],
                "n": sum(n for _, n in batch),
            },
        )
