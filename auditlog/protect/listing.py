"""What holds and erasures a reader may see (C15, C16, C19): the decisions of the administrative
logs, read back and narrowed to a set of tenants.

Every erasure is an ``erasure`` record; every refused erasure an ``admin`` record
``erase.refused``; both name their requests by ``(log, request_id)``. The tenant of each request
is read from its ``request.start`` as signed: covered by its log's newest checkpoint signed by a
reader's key, included under its root (``auditlog.store.proven_tenants``), never from the unsigned
``records.tenant`` column or a row no checkpoint covers. A reader scoped to tenants sees:

- a hold only when every tenant its scope names (``tenant``, and the tenant of its
  ``request_id``) is one of theirs and it names at least one: a hold on a principal or a time
  range alone may concern any tenant (and a principal's name is itself personal data), so only
  an unscoped reader (an admin) sees it;
- an erasure or a refusal only when one of its requests is of their tenants, and of its requests
  only those.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Connection

from auditlog.ledger import RecordKind, Verifier, parse_header
from auditlog.protect.holds import Hold
from auditlog.store import proven_tenants, reader_admin_logs

__all__ = [
    "ErasureEntry",
    "ErasureTarget",
    "list_erasures",
    "visible_erasures",
    "visible_holds",
]

REFUSED = "erase.refused"


@dataclass(frozen=True, slots=True)
class ErasureTarget:
    """A request an erasure named: shredded, or (``because``) blocked."""

    log: str
    request_id: str
    tenant: str | None
    because: str | None = None


@dataclass(frozen=True, slots=True)
class ErasureEntry:
    """An erasure (``erased``) or a refused one (``refused``), as its signed record says."""

    entry_id: str  # <origin>#<seq> of the record
    outcome: Literal["erased", "refused"]
    principal: str
    reason: str
    legal_basis: str
    ts: int
    targets: tuple[ErasureTarget, ...]


def _named(header: dict[str, Any], member: str) -> list[dict[str, Any]]:
    found = header.get(member)
    return [t for t in found if isinstance(t, dict)] if isinstance(found, list) else []


def _decisions(
    conn: Connection, trusted: Sequence[Verifier], names: Sequence[str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(entry id, outcome, header)`` of every erasure and refusal proven under ``trusted``
    (``auditlog.store.reader_admin_logs``: a row a database writer inserted is not one), in no
    particular order. The kind is the signed header's, never the ``kind`` column."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    for log in reader_admin_logs(conn, trusted, names=names):
        for record in log.records:
            header = parse_header(record.body)  # proven: these bytes are the signed ones
            if header["kind"] == RecordKind.ERASURE.value:
                outcome = "erased"
            elif header["kind"] == RecordKind.ADMIN.value and header.get("action") == REFUSED:
                outcome = "refused"
            else:
                continue
            found.append((f"{log.bound.origin}#{record.seq}", outcome, header))
    return found


def list_erasures(
    conn: Connection,
    trusted: Sequence[Verifier],
    *,
    log_keys: Sequence[Verifier] = (),
    by_key_name: bool = True,
) -> list[ErasureEntry]:
    """Every erasure and refused erasure proven under ``trusted`` (the administrative keys; with
    none, the keys stored for each log), oldest first, with each request's tenant as its signed
    ``request.start`` says under ``log_keys`` (the keys of the logs it names). The logs named
    like a key of ``trusted`` are read whatever their ``kind`` cells say (``by_key_name``; pass
    False when ``trusted`` are engine keys, as for ``list_holds``). Raises
    :class:`~auditlog.store.UnprovenAdminLogError` when an administrative log does not match
    its signed checkpoint."""
    decisions = _decisions(conn, trusted, [v.name for v in trusted] if by_key_name else [])
    named = [
        str(t.get("request_id"))
        for _, outcome, h in decisions
        for t in _named(h, "erased" if outcome == "erased" else "refused")
    ]
    tenants = proven_tenants(conn, named, log_keys)
    entries = []
    for entry_id, outcome, h in decisions:
        targets = tuple(
            ErasureTarget(
                log=str(t.get("log")),
                request_id=str(t.get("request_id")),
                tenant=tenants.get((str(t.get("log")), str(t.get("request_id")))),
                because=None if outcome == "erased" else str(t.get("because")),
            )
            for t in _named(h, "erased" if outcome == "erased" else "refused")
        )
        entries.append(
            ErasureEntry(
                entry_id=entry_id,
                outcome="erased" if outcome == "erased" else "refused",
                principal=str(h.get("principal", "")),
                reason=str(h.get("reason", "")),
                legal_basis=str(h.get("legal_basis", "")),
                ts=int(h.get("ts", 0)),
                targets=targets,
            )
        )
    return sorted(entries, key=lambda e: (e.ts, e.entry_id))


def visible_erasures(
    entries: Iterable[ErasureEntry], tenants: Collection[str] | None
) -> list[ErasureEntry]:
    """The entries a reader of ``tenants`` (None: every tenant) sees, narrowed to their requests."""
    if tenants is None:
        return list(entries)
    shown = []
    for entry in entries:
        own = tuple(t for t in entry.targets if t.tenant is not None and t.tenant in tenants)
        if own:
            shown.append(replace(entry, targets=own))
    return shown


def _hold_tenants(hold: Hold, found: dict[str, set[str | None]]) -> set[str | None]:
    named: set[str | None] = set()
    if hold.scope.tenant is not None:
        named.add(hold.scope.tenant)
    if hold.scope.request_id is not None:
        named |= found.get(hold.scope.request_id) or {None}  # unknown request: nobody's
    return named


def visible_holds(
    conn: Connection,
    holds: Iterable[Hold],
    tenants: Collection[str] | None,
    *,
    log_keys: Sequence[Verifier] = (),
) -> list[Hold]:
    """The holds a reader of ``tenants`` (None: every tenant) sees; the tenant of a request a
    hold names is the one its signed ``request.start`` says under ``log_keys``."""
    holds = list(holds)
    if tenants is None:
        return holds
    ids = [h.scope.request_id for h in holds if h.scope.request_id is not None]
    found: dict[str, set[str | None]] = {}
    for (_, request_id), tenant in proven_tenants(conn, ids, log_keys).items():
        found.setdefault(request_id, set()).add(tenant)
    shown = []
    for hold in holds:
        named = _hold_tenants(hold, found)
        if named and all(t is not None and t in tenants for t in named):
            shown.append(hold)
    return shown
