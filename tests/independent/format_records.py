"""One log of the independent verifier (docs/FORMAT.md section 7 steps 1-7, section 4 nodes,
section 5 checkpoints), written from the document alone."""

from __future__ import annotations

import hashlib
from typing import Any

from format_header import check_header
from format_primitives import (
    OPAQUE,
    FormatError,
    leaf_hash,
    mth,
    open_note,
    parse_checkpoint,
    parse_json_text,
)

ZEROS = "0" * 64
REQUEST_KINDS = ("request.start", "tokens", "request.end")


class LogChecker:
    """Reads one log's rows once, in ``ORDER BY seq`` order, and collects its findings."""

    def __init__(
        self,
        origin: str,
        trusted: dict[tuple[str, bytes], Any],
        stored_keys: dict[tuple[str, bytes], Any] | None = None,
    ) -> None:
        self.origin, self.trusted = origin, trusted
        # section 7: stored checkpoints open under the trusted keys, or, with none, under the
        # log's own signing_keys (which find damage and vouch for nothing)
        self.opening_keys = trusted or (stored_keys or {})
        self.failures: list[str] = []
        self.unproven: list[str] = []
        self.leaves: list[bytes] = []
        self.sealed: dict[str, tuple[str, dict[str, str]]] = {}  # request -> (tenant, enc)
        self.erasures: dict[tuple[str, str], bool] = {}
        self.checkpoint_sizes: set[int] = set()
        # the keys whose signature on a stored checkpoint verified
        self.signers: set[tuple[str, bytes]] = set()
        self.covered = 0
        self._expected_seq = 0
        self._open: dict[str, dict[str, Any]] = {}
        self._used: set[str] = set()
        self._steps: dict[int, list[tuple[str, int]]] = {}
        self._erasure_positions: list[tuple[int, dict[str, Any]]] = []
        self.admin_events: list[tuple[int, dict[str, Any]]] = []  # admin and erasure, in order
        self.starts: dict[str, dict[str, Any]] = {}  # request -> its request.start header

    def fail(self, code: str, where: Any = None) -> None:
        self.failures.append(f"{code} at {where} in {self.origin}")

    def trusted_ids(self) -> set[tuple[str, str]]:
        return {(name, kid.hex()) for name, kid in self.trusted}

    @staticmethod
    def digest_hex(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    # --- driving -------------------------------------------------------------------------

    def run(
        self,
        records: list[Any],
        payloads: dict[int, Any],
        nodes: list[Any],
        checkpoints: list[Any],
    ) -> None:
        for i, row in enumerate(records):
            if not self._record(i, row, payloads.get(row["seq"])):
                continue  # its payload row, if any, stays unaccounted for (section 3.5)
            payloads.pop(row["seq"], None)
        if payloads:
            self.fail("payload.orphan", sorted(payloads))
        self._nodes(nodes)
        for row in checkpoints:
            self._checkpoint(row)
        for position, header in self._erasure_positions:
            for entry in header["erased"]:
                name = (entry["log"], entry["request_id"])
                self.erasures[name] = self.erasures.get(name, False) or position < self.covered

    def finish(self) -> None:
        n = len(self.leaves)
        for step, pending in self._steps.items():
            if pending:
                self.fail("step.unreconciled", step)
        if n == 0:
            self.unproven.append(f"{self.origin}: empty log")
        elif not self.trusted:
            self.unproven.append(f"{self.origin}: no trusted key")
        elif self.covered < n:
            self.unproven.append(f"{self.origin}: records {self.covered}..{n - 1} pending")

    def witness(self, size: int, root: bytes) -> None:
        if size > len(self.leaves):
            self.fail("witness.rollback", len(self.leaves))
        elif mth(self.leaves[:size]) != root:
            self.fail("witness.rewrite", size - 1)
        if size not in self.checkpoint_sizes:
            self.fail("checkpoint.missing", size)

    # --- records ---------------------------------------------------------------------------

    def _record(self, i: int, row: Any, payload: Any) -> bool:
        """Check one record; False when its header is invalid (nothing else is read)."""
        body = row["body"]
        body = body.encode("utf-8") if isinstance(body, str) else body
        leaf = leaf_hash(bytes(body))
        self.leaves.append(leaf)
        if row["leaf"] != leaf:
            self.fail("leaf.mismatch", i)
        try:
            header = check_header(bytes(body))
        except FormatError as exc:
            self.fail(f"header.invalid ({exc})", i)
            self._expected_seq += 1
            return False
        if header["log"] != self.origin:
            self.fail("header.log", i)
        if header["seq"] != self._expected_seq:
            self.fail("seq.mismatch", i)
        self._expected_seq = max(header["seq"], self._expected_seq) + 1
        columns = (row["seq"], row["kind"], row["request_id"], row["req_seq"], row["tenant"])
        wanted = (header["seq"], header["kind"], header["request_id"], header["req_seq"])
        if columns != (*wanted, header.get("tenant")) or row["ts"] != int(header["ts"]):
            self.fail("column.mismatch", i)
        content = self._payload(i, header, payload)
        kind = header["kind"]
        if kind in REQUEST_KINDS:
            self._chain(i, header, leaf, content)
        elif kind == "step":
            self._manifest(i, header)
        elif kind == "erasure":
            self._erasure_positions.append((i, header))
            self.admin_events.append((i, header))
        elif kind == "admin":
            self.admin_events.append((i, header))
        return True

    def _payload(self, i: int, header: dict[str, Any], data: Any) -> Any:
        """The stored payload as JSON, whatever its digest (section 3.4); OPAQUE when absent
        or not JSON text."""
        digest = header["payload"]
        if data is None:
            if digest is not None:
                self.fail("payload.absent", i)
            return OPAQUE
        data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if digest is None:
            self.fail("payload.unexpected", i)
        elif self.digest_hex(data) != digest:
            self.fail("payload.mismatch", i)
        return parse_json_text(data)

    def _chain(self, i: int, h: dict[str, Any], leaf: bytes, content: Any) -> None:
        request = h["request_id"]
        if h["kind"] == "request.start":
            if request in self._used:  # the chain starts anew from this record
                self.fail("chain.restarted", i)
            self._used.add(request)
            self.starts[request] = h
            if h["req_seq"] != 0 or h["prev"] != ZEROS:
                self.fail("chain.req_seq", i)
            self._open[request] = {"next": 1, "leaf": leaf, "tenant": h["tenant"], "tokens": 0}
            if "enc" in h:
                self.sealed[request] = (h["tenant"], h["enc"])
            return
        if h["kind"] == "tokens":  # it counts in its step even outside an open chain
            self._steps.setdefault(h["step"], []).append((request, h["n"]))
        chain = self._open.get(request)
        if chain is None:  # no content rules outside an open chain (section 7 step 6)
            self.fail("chain.not_open", i)
            return
        if h["req_seq"] != chain["next"]:
            self.fail("chain.req_seq", i)
        if h["prev"] != chain["leaf"].hex():
            self.fail("chain.prev", i)
        if h["tenant"] != chain["tenant"]:
            self.fail("chain.tenant", i)
        chain["next"], chain["leaf"] = chain["next"] + 1, leaf
        if h["kind"] == "tokens":
            chain["tokens"] += h["n"]
            self._tokens(i, h, content)
            return
        del self._open[request]
        generated, delivered = h["n_generated"], h["n_delivered"]
        if generated is not None and generated != chain["tokens"]:
            self.fail("end.counts", i)
        if generated is not None and delivered is not None and delivered > generated:
            self.fail("end.counts", i)

    def _tokens(self, i: int, h: dict[str, Any], content: Any) -> None:
        prov = h["prov"]
        k = 0
        while k < len(prov) and prov[k] == "draft_accepted":
            k += 1
        all_target = all(p == "target" for p in prov)
        tail = prov[k:]
        shape = all_target or (
            len(tail) <= 1 and all(p in ("target_recovered", "bonus") for p in tail)
        )
        if not shape:
            self.fail("tokens.prov", i)
        if content is OPAQUE:
            return
        if not isinstance(content, dict):
            self.fail("tokens.payload", i)
            return
        ids, drafts = content.get("token_ids"), content.get("drafts")
        if not _ints(ids) or len(ids) != h["n"] or not _ints(drafts):
            self.fail("tokens.payload", i)
            return
        if not shape:
            return
        if all_target and prov and drafts:
            self.fail("tokens.prov", i)
        elif drafts and not all_target:
            recovered = tail == ["target_recovered"]
            if k > len(drafts) or ids[:k] != drafts[:k] or (recovered and k >= len(drafts)):
                self.fail("tokens.prov", i)

    def _manifest(self, i: int, h: dict[str, Any]) -> None:
        pending = self._steps.pop(h["step"], [])
        batch = [tuple(pair) for pair in h["batch"]]
        requests = [r for r, _ in pending]
        if pending != batch or len(set(requests)) != len(requests):
            self.fail("step.mismatch", i)
        if h["n"] != sum(n for _, n in batch):
            self.fail("step.mismatch (n)", i)

    # --- tree ------------------------------------------------------------------------------

    def _nodes(self, nodes: list[Any]) -> None:
        n = len(self.leaves)
        wanted = {(level, idx) for level in range(4, 64, 4) for idx in range(n >> level)}
        for row in nodes:
            level, idx = row["level"], row["idx"]
            if (level, idx) not in wanted:
                self.fail("node.extra", (level, idx))
                continue
            wanted.discard((level, idx))
            if row["hash"] != mth(self.leaves[idx << level : (idx + 1) << level]):
                self.fail("node.mismatch", (level, idx))
        if wanted:
            self.fail("node.missing", sorted(wanted))

    def _checkpoint(self, row: Any) -> None:
        self.checkpoint_sizes.add(row["size"])
        self._columns(row)
        try:
            note = row["note"]
            keys = self.opening_keys
            origin, size, root = parse_checkpoint(open_note(note, keys, self.signers))
        except (FormatError, TypeError, AttributeError) as exc:
            self.fail(f"checkpoint.invalid ({exc})", row["size"])
            return
        if origin != self.origin:
            self.fail("checkpoint.invalid (origin)", size)
            return
        if size > len(self.leaves):
            self.fail("checkpoint.truncated", len(self.leaves))
        elif mth(self.leaves[:size]) != root:
            self.fail("checkpoint.root", size - 1)
        else:
            self.covered = max(self.covered, size)

    def _columns(self, row: Any) -> None:
        """checkpoint.column: the size/root columns copy the note's checkpoint text, whether or
        not a signature on it verifies (section 7)."""
        try:
            _, size, root = parse_checkpoint(open_note(row["note"], {}, require_signature=False))
        except (FormatError, TypeError, AttributeError):
            return  # checkpoint.invalid
        if (row["size"], row["root"]) != (size, root):
            self.fail("checkpoint.column", row["size"])


def _ints(value: Any) -> bool:
    return isinstance(value, list) and all(type(v) is int for v in value)
