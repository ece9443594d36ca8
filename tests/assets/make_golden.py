"""Regenerate the golden vectors of docs/FORMAT.md in tests/assets/golden/ (C7).

Deterministic: a fixed Ed25519 seed, fixed times, fixed content.
``PYTHONPATH=. python tests/assets/make_golden.py`` (or with the package installed) rewrites the
files; ``tests/ledger/test_golden.py`` regenerates them in memory and compares byte for byte, then
runs the verifier on every broken variant.

Files (``<variant>`` is ``valid`` or the name of a tamper):

* ``verifier.txt``: the verifier key string of the log's signing key.
* ``<variant>.jsonl``: one stored record per line, ``{"seq", "kind", "request_id", "req_seq",
  "tenant", "ts", "body_hex", "leaf_hex", "payload_hex"}`` (the indexed columns, header bytes,
  stored leaf and stored payload, as a database would hold them).
* ``<variant>.checkpoints``: the stored checkpoint notes, separated by a line ``=====``.
* ``witnessed.checkpoint``: the checkpoint a witness kept (the valid log's final one).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

from auditlog.ledger import (
    ZERO_HASH,
    Checkpoint,
    MerkleFrontier,
    Record,
    RecordKind,
    Signer,
    StoredRecord,
    build_record,
    payload_bytes,
    sign_checkpoint,
)

ORIGIN = "auditlog.example/golden/1"
#: Ed25519 seed of the golden signing key: bytes 0x00..0x1f. Public test key, never a real one.
GOLDEN_SEED = bytes(range(32))
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in nanoseconds
NOTE_SEPARATOR = "=====\n"
GOLDEN_DIR = Path(__file__).parent / "golden"


def golden_signer() -> Signer:
    return Signer(name=ORIGIN, seed=GOLDEN_SEED)


def _model(name: str, digit: str) -> dict[str, str]:
    return {
        "name": name,
        "weights_sha256": digit * 64,
        "tokenizer_sha256": "f" * 64,
        "architecture": "llama",
    }


class LogBuilder:
    """Sequences records the way the recorder does (one writer), with no database."""

    def __init__(self, origin: str = ORIGIN) -> None:
        self.origin = origin
        self.records: list[Record] = []
        self.frontier = MerkleFrontier()
        self.heads: dict[str, tuple[int, str, str]] = {}  # rid -> (req_seq, leaf hex, tenant)

    def add(
        self,
        kind: RecordKind,
        ts: int,
        *,
        rid: str | None = None,
        tenant: str | None = None,
        payload: dict[str, object] | None = None,
        **fields: object,
    ) -> Record:
        req_seq: int | None = None
        prev: str | None = None
        if rid is not None:
            if kind is RecordKind.REQUEST_START:
                req_seq, prev = 0, ZERO_HASH
            else:
                last, prev, tenant = self.heads[rid]
                req_seq = last + 1
        if tenant is not None:
            fields["tenant"] = tenant
        record = build_record(
            log=self.origin,
            seq=len(self.records),
            kind=kind,
            request_id=rid,
            req_seq=req_seq,
            ts=ts,
            prev=prev,
            payload=None if payload is None else payload_bytes(payload),
            fields=fields,
        )
        self.records.append(record)
        self.frontier.append(record.leaf)
        if rid is not None and req_seq is not None:
            if kind is RecordKind.REQUEST_END:
                del self.heads[rid]
            else:
                self.heads[rid] = (req_seq, record.leaf.hex(), fields["tenant"])  # type: ignore[assignment]
        return record

    def start(self, rid: str, tenant: str, ts: int, prompt: list[int], text: str) -> None:
        self.add(
            RecordKind.REQUEST_START,
            ts,
            rid=rid,
            tenant=tenant,
            payload={"prompt_token_ids": prompt, "prompt_text": text},
            principal="user-" + rid[-1],
            client="key-01",
            engine="auditlog-ref/0.1",
            params={
                "max_tokens": 8,
                "seed": 1234,
                "temperature": "0.7",
                "top_p": "0.95",
                "speculative_k": 4,
            },
            target=_model("demo-target", "a"),
            draft=_model("demo-draft", "b"),
        )

    def step(
        self, step: int, ts: int, runs: list[tuple[str, list[int], list[str], list[int]]]
    ) -> None:
        """One physical step: a tokens record per run (request id, tokens, provenance, drafts),
        then the manifest."""
        for rid, tokens, prov, drafts in runs:
            self.add(
                RecordKind.TOKENS,
                ts,
                rid=rid,
                payload={"token_ids": tokens, "drafts": drafts},
                step=step,
                n=len(tokens),
                prov=prov,
            )
        self.add(
            RecordKind.STEP,
            ts,
            step=step,
            batch=[[rid, len(t)] for rid, t, _, _ in runs],
            n=sum(len(t) for _, t, _, _ in runs),
        )

    def end(self, rid: str, ts: int, reason: str, n_generated: int, n_delivered: int) -> None:
        self.add(
            RecordKind.REQUEST_END,
            ts,
            rid=rid,
            reason=reason,
            n_generated=n_generated,
            n_delivered=n_delivered,
        )

    def checkpoint(self, signer: Signer) -> str:
        cp = Checkpoint(origin=self.origin, size=self.frontier.size, root=self.frontier.root())
        return sign_checkpoint(cp, [signer])


def stored(record: Record) -> StoredRecord:
    return StoredRecord(
        seq=record.seq,
        body=record.body,
        leaf=record.leaf,
        payload=record.payload,
        kind=record.kind.value,
        request_id=record.request_id,
        req_seq=record.req_seq,
        tenant=record.tenant,
        ts=record.ts,
    )


def golden_log(
    prompt_b: str = "Wie geht’s? \u00e9\u2014\U0001f600",
) -> tuple[list[StoredRecord], list[str]]:
    """Two tenants' requests interleaved in a speculative batch; checkpoints at 5 and at the end."""
    signer = golden_signer()
    log = LogBuilder()
    ms = 1_000_000
    log.start("req-a", "acme", T0, [1, 15043, 3186], "Hello, world")
    log.start("req-b", "globex", T0 + 1 * ms, [1, 1724, 338, 278], prompt_b)
    log.step(
        0,
        T0 + 2 * ms,
        [
            ("req-a", [450, 29871], ["draft_accepted", "target_recovered"], [450, 1576, 263]),
            ("req-b", [306], ["target"], []),
        ],
    )
    checkpoints = [log.checkpoint(signer)]
    log.step(
        1,
        T0 + 3 * ms,
        [
            (
                "req-b",
                [29889, 13, 2],
                ["draft_accepted", "draft_accepted", "bonus"],
                [29889, 13, 2],
            ),
            ("req-a", [2], ["target"], []),
        ],
    )
    log.end("req-a", T0 + 4 * ms, "stop", 3, 3)
    log.end("req-b", T0 + 5 * ms, "length", 4, 3)
    log.add(
        RecordKind.ACCESS,
        T0 + 6 * ms,
        principal="auditor-1",
        role="auditor",
        tenant="acme",
        action="read_trail",
        resource="req-a",
        reason="case 42",
    )
    checkpoints.append(log.checkpoint(signer))
    return [stored(r) for r in log.records], checkpoints


def _edit_body(rec: StoredRecord, old: bytes, new: bytes) -> StoredRecord:
    return dataclasses.replace(rec, body=rec.body.replace(old, new, 1))


def _tampers() -> dict[
    str, Callable[[list[StoredRecord], list[str]], tuple[list[StoredRecord], list[str]]]
]:
    """Broken variants, each named for its tamper (C8, C10, C11)."""

    def edit_field(rs: list[StoredRecord], cs: list[str]) -> tuple[list[StoredRecord], list[str]]:
        rs = list(rs)
        rs[8] = _edit_body(rs[8], b'"n_generated":3', b'"n_generated":2')
        return rs, cs

    def delete_record(
        rs: list[StoredRecord], cs: list[str]
    ) -> tuple[list[StoredRecord], list[str]]:
        return rs[:3] + rs[4:], cs

    def reorder_records(
        rs: list[StoredRecord], cs: list[str]
    ) -> tuple[list[StoredRecord], list[str]]:
        rs = list(rs)
        rs[2], rs[3] = rs[3], rs[2]
        return rs, cs

    def truncate_tail(
        rs: list[StoredRecord], cs: list[str]
    ) -> tuple[list[StoredRecord], list[str]]:
        return rs[:-2], cs

    def edit_tenant_column(
        rs: list[StoredRecord], cs: list[str]
    ) -> tuple[list[StoredRecord], list[str]]:
        rs = list(rs)
        rs[1] = dataclasses.replace(rs[1], tenant="acme")
        return rs, cs

    def edit_payload(rs: list[StoredRecord], cs: list[str]) -> tuple[list[StoredRecord], list[str]]:
        rs = list(rs)
        assert rs[0].payload is not None
        rs[0] = dataclasses.replace(rs[0], payload=rs[0].payload.replace(b"Hello", b"HELLO"))
        return rs, cs

    def forge_checkpoint(
        rs: list[StoredRecord], cs: list[str]
    ) -> tuple[list[StoredRecord], list[str]]:
        forger = Signer(name=ORIGIN, seed=bytes(range(1, 33)))
        cp = Checkpoint(origin=ORIGIN, size=len(rs), root=b"\x42" * 32)
        return rs, [cs[0], sign_checkpoint(cp, [forger])]

    def rewrite_consistently(
        rs: list[StoredRecord], cs: list[str]
    ) -> tuple[list[StoredRecord], list[str]]:
        # An administrator holding the signing key rebuilds the whole log with another prompt
        # and re-signs every checkpoint: only the witnessed checkpoint catches it (C10).
        return golden_log(prompt_b="Wie geht es?")

    return {
        "edit_field": edit_field,
        "delete_record": delete_record,
        "reorder_records": reorder_records,
        "truncate_tail": truncate_tail,
        "edit_tenant_column": edit_tenant_column,
        "edit_payload": edit_payload,
        "forge_checkpoint": forge_checkpoint,
        "rewrite_consistently": rewrite_consistently,
    }


TAMPER_NAMES = tuple(_tampers())


def _jsonl(records: list[StoredRecord]) -> bytes:
    lines = []
    for r in records:
        lines.append(
            json.dumps(
                {
                    "seq": r.seq,
                    "kind": r.kind,
                    "request_id": r.request_id,
                    "req_seq": r.req_seq,
                    "tenant": r.tenant,
                    "ts": r.ts,
                    "body_hex": r.body.hex(),
                    "leaf_hex": r.leaf.hex(),
                    "payload_hex": None if r.payload is None else r.payload.hex(),
                },
                sort_keys=True,
            )
        )
    return ("\n".join(lines) + "\n").encode()


def load_jsonl(data: bytes) -> list[StoredRecord]:
    out = []
    for line in data.decode().splitlines():
        d = json.loads(line)
        out.append(
            StoredRecord(
                seq=d["seq"],
                body=bytes.fromhex(d["body_hex"]),
                leaf=bytes.fromhex(d["leaf_hex"]),
                payload=None if d["payload_hex"] is None else bytes.fromhex(d["payload_hex"]),
                kind=d["kind"],
                request_id=d["request_id"],
                req_seq=d["req_seq"],
                tenant=d["tenant"],
                ts=d["ts"],
            )
        )
    return out


def golden_files() -> dict[str, bytes]:
    """Every golden file, name -> bytes."""
    records, checkpoints = golden_log()
    files = {
        "verifier.txt": (golden_signer().verifier_key + "\n").encode(),
        "witnessed.checkpoint": checkpoints[-1].encode(),
    }
    variants = {"valid": (records, checkpoints)}
    for name, tamper in _tampers().items():
        variants[name] = tamper(records, checkpoints)
    for name, (rs, cs) in variants.items():
        files[f"{name}.jsonl"] = _jsonl(rs)
        files[f"{name}.checkpoints"] = NOTE_SEPARATOR.join(cs).encode()
    return files


def split_notes(data: bytes) -> list[str]:
    return data.decode().split(NOTE_SEPARATOR) if data else []


def main() -> int:
    GOLDEN_DIR.mkdir(exist_ok=True)
    for name, data in golden_files().items():
        (GOLDEN_DIR / name).write_bytes(data)
    print(f"wrote {len(golden_files())} files to {GOLDEN_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
