"""The state file of incremental verification (``auditlog verify --state FILE --state-key KEY``).

After a run, the state of each log that had no integrity failure (:class:`LogState`: its Merkle
frontier, open chains, request ids used, open steps, counts, sealed requests, erasure records,
roots at checkpoint sizes) is written to FILE; the next run checks only the records after it.
The file is signed (Ed25519) with a signing key of the verifier's own (``auditlog keygen``),
kept where neither the database's writer nor its administrator can read it: a file whose
signature does not verify under that key is refused (exit 2), never trusted. docs/TRUST.md says
what a resumed run proves. Format: the line ``auditlog-verify-state/1 <base64 signature>``,
then the JSON body; the signature covers ``auditlog-verify-state/1\n`` and the body bytes.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

import orjson

from auditlog.errors import AuditlogError, ConfigurationError
from auditlog.ledger.chain import OpenChain
from auditlog.ledger.merkle_tree import MerkleFrontier
from auditlog.ledger.note import Signer
from auditlog.ledger.stitch import LogState

__all__ = ["read_state", "read_state_key", "write_state"]

_MAGIC = b"auditlog-verify-state/1"


def read_state_key(path: Path) -> Signer:
    """The signing key in ``path`` (made by ``auditlog keygen NAME --out PATH``)."""
    try:
        return Signer.from_key_string(path.read_text().strip())
    except OSError as exc:
        raise ConfigurationError(f"cannot read state key {path}: {exc}") from None
    except (AuditlogError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"state key {path} is not a signing key (make one with: auditlog keygen "
            f"verify-state --out {path.name}): {exc}"
        ) from None


def read_state(path: Path, key: Signer) -> dict[str, LogState]:
    """origin -> saved state; {} when ``path`` does not exist. Raises ConfigurationError for a
    file that is not a state file or whose signature does not verify under ``key``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read state file {path}: {exc}") from None
    head, _, body = data.partition(b"\n")
    magic, _, mac = head.partition(b" ")
    if magic != _MAGIC:
        raise ConfigurationError(f"{path} is not an auditlog verify state file")
    try:
        signature = base64.b64decode(mac, validate=True)
    except binascii.Error:
        signature = b""
    if not key.verifier.verify(_MAGIC + b"\n" + body, signature):
        raise ConfigurationError(
            f"state file {path} is not signed by the state key (altered, or written with "
            f"another key): refusing to trust it; remove it to verify from the start"
        )
    try:
        logs = orjson.loads(body)["logs"]
        return {origin: _decode(entry) for origin, entry in logs.items()}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"state file {path} is malformed: {exc}") from None


def write_state(path: Path, key: Signer, states: dict[str, LogState]) -> None:
    """Write ``states`` to ``path`` atomically (a temporary file renamed over it)."""
    body = orjson.dumps(
        {"logs": {origin: _encode(s) for origin, s in states.items()}}, option=orjson.OPT_SORT_KEYS
    )
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            signature = base64.b64encode(key.sign(_MAGIC + b"\n" + body))
            f.write(_MAGIC + b" " + signature + b"\n" + body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigurationError(f"cannot write state file {path}: {exc}") from None


def _encode(s: LogState) -> dict[str, Any]:
    return {
        "size": s.size,
        "root": s.frontier.root().hex(),
        "frontier": [[level, digest.hex()] for level, digest in s.frontier.subtrees()],
        "chains": {
            rid: [c.next_req_seq, c.prev, c.tenant, c.num_tokens] for rid, c in s.chains.items()
        },
        "ended": sorted(s.ended),
        "open_steps": {
            str(step): [first, entries] for step, (first, entries, _) in s.open_steps.items()
        },
        "counts": s.counts,
        "sealed": {rid: list(v) for rid, v in s.sealed.items()},
        "erasures": [[index, h] for index, h in s.erasures],
        "admin": [[index, h] for index, h in s.admin],
        "starts": s.starts,
        "roots": {str(size): root.hex() for size, root in s.roots.items()},
        "first_ts": {str(size): ts for size, ts in s.first_ts.items()},
    }


def _decode(e: dict[str, Any]) -> LogState:
    frontier = MerkleFrontier.from_subtrees([(lv, bytes.fromhex(h)) for lv, h in e["frontier"]])
    if frontier.size != e["size"] or frontier.root().hex() != e["root"]:
        raise ValueError("its frontier does not give its size and root")
    return LogState(
        frontier=frontier,
        chains={rid: OpenChain(*c) for rid, c in e["chains"].items()},
        ended=set(e["ended"]),
        open_steps={
            int(step): (first, entries, {rid for rid, _ in entries})
            for step, (first, entries) in e["open_steps"].items()
        },
        counts=dict(e["counts"]),
        sealed={rid: (v[0], v[1]) for rid, v in e["sealed"].items()},
        erasures=[(index, h) for index, h in e["erasures"]],
        admin=[(index, h) for index, h in e["admin"]],
        starts=dict(e["starts"]),
        roots={int(size): bytes.fromhex(root) for size, root in e["roots"].items()},
        first_ts={int(size): ts for size, ts in e["first_ts"].items()},
    )
