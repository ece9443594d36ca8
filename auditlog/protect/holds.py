"""Legal holds (C15): signed records that stop erasure and retention of what they cover.

A hold is an ``admin`` record ``{"action": "hold.place", "principal", "reason", "scope"}`` of an
administrative log; its id is ``<origin>#<seq>``. ``{"action": "hold.release", "hold": id}``
releases it. The scope names any of ``tenant``, ``principal`` (of the request), ``request_id``
and a ``ts`` range ``from``/``to`` (decimal ns, ``from`` <= ts < ``to``); a request is covered
when it matches every member given.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from auditlog.errors import ConfigurationError, FormatError, NotFoundError
from auditlog.ledger import RecordKind, Signer, Verifier, parse_header
from auditlog.protect.admin_log import append_admin_record
from auditlog.store import proven_admin_logs

__all__ = ["Hold", "HoldScope", "list_holds", "place_hold", "release_hold"]

PLACE, RELEASE = "hold.place", "hold.release"


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldScope:
    tenant: str | None = None
    principal: str | None = None
    request_id: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None

    def to_json(self) -> dict[str, str]:
        out = {
            "tenant": self.tenant,
            "principal": self.principal,
            "request_id": self.request_id,
            "from": None if self.start_ns is None else str(self.start_ns),
            "to": None if self.end_ns is None else str(self.end_ns),
        }
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> HoldScope:
        """The scope a ``hold.place`` record names; :class:`FormatError` for one that is not
        of :meth:`to_json`'s shape (names as strings, times as decimal nanoseconds)."""
        for name in ("tenant", "principal", "request_id"):
            if obj.get(name) is not None and not isinstance(obj[name], str):
                raise FormatError(f"hold scope {name!r} is not a string: {obj[name]!r}")
        return cls(
            tenant=obj.get("tenant"),
            principal=obj.get("principal"),
            request_id=obj.get("request_id"),
            start_ns=_scope_ns(obj, "from"),
            end_ns=_scope_ns(obj, "to"),
        )

    def covers(self, start: dict[str, Any]) -> bool:
        """True if the request whose ``request.start`` header is ``start`` lies in the scope."""
        ts = start["ts"]
        return (
            (self.tenant is None or start.get("tenant") == self.tenant)
            and (self.principal is None or start.get("principal") == self.principal)
            and (self.request_id is None or start["request_id"] == self.request_id)
            and (self.start_ns is None or ts >= self.start_ns)
            and (self.end_ns is None or ts < self.end_ns)
        )


def _scope_ns(obj: dict[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if type(value) is int or (isinstance(value, str) and _DECIMAL.fullmatch(value)):
        return int(value)
    raise FormatError(f"hold scope {name!r} is not decimal nanoseconds: {value!r}")


_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str  # <origin>#<seq> of the placing record
    scope: HoldScope
    reason: str
    placed_by: str
    placed_ts: int


def list_holds(
    conn: Connection,
    trusted: Sequence[Verifier],
    *,
    own: str | None = None,
    by_key_name: bool = True,
) -> list[Hold]:
    """The holds in force (C15): placed and not released, read only from records proven under
    ``trusted`` (the administrative keys the caller holds: a record counts only when it is in a
    log whose checkpoint that key signed, and that checkpoint covers it).

    A ``hold.release`` that a database writer inserted releases nothing, and a ``hold.place``
    it inserted holds nothing. Raises :class:`~auditlog.store.UnprovenAdminLogError` when an
    administrative log (``own``, the log the caller writes, or any log signed by ``trusted``)
    has records its signed checkpoint does not cover: decisions on holds are then refused.
    ``by_key_name``: see :func:`~auditlog.store.proven_admin_logs`.
    """
    placed: dict[str, Hold] = {}
    released: set[str] = set()
    for log in proven_admin_logs(conn, trusted, own=own, by_key_name=by_key_name):
        for record in log.records:
            # the proven header's kind: the ``kind`` column is an unsigned copy of it
            h = parse_header(record.body)
            if h["kind"] != RecordKind.ADMIN.value:
                continue
            if h.get("action") == PLACE and isinstance(h.get("scope"), dict):
                hold_id = f"{log.bound.origin}#{record.seq}"
                placed[hold_id] = Hold(
                    hold_id,
                    HoldScope.from_json(h["scope"]),
                    str(h.get("reason")),
                    str(h.get("principal")),
                    h["ts"],
                )
            elif h.get("action") == RELEASE:
                released.add(str(h.get("hold")))
    return [hold for hold_id, hold in placed.items() if hold_id not in released]


def place_hold(
    engine: Engine,
    scope: HoldScope,
    *,
    by: str,
    reason: str,
    signer: Signer,
    origin: str | None = None,
    now_ns: int | None = None,
) -> Hold:
    """Place a legal hold as a signed record; returns it (its id names the record)."""
    if not scope.to_json():
        raise ConfigurationError("a hold needs a scope: tenant, principal, request or time range")
    if not by.strip() or not reason.strip():
        raise ConfigurationError("a hold needs who places it (--by) and why (--reason)")
    origin = origin or signer.name
    now = time.time_ns() if now_ns is None else now_ns
    fields = {"action": PLACE, "principal": by, "reason": reason, "scope": scope.to_json()}
    with engine.begin() as conn:
        record, _ = append_admin_record(
            conn, signer=signer, origin=origin, kind=RecordKind.ADMIN, fields=fields, now_ns=now
        )
    return Hold(f"{origin}#{record.seq}", scope, reason, by, now)


def release_hold(
    engine: Engine,
    hold_id: str,
    *,
    by: str,
    reason: str,
    signer: Signer,
    origin: str | None = None,
    now_ns: int | None = None,
) -> None:
    """Release a hold in force, as a signed record. NotFoundError if no such hold is in force."""
    now = time.time_ns() if now_ns is None else now_ns
    with engine.begin() as conn:
        origin = origin or signer.name
        in_force = list_holds(conn, [signer.verifier], own=origin)
        if hold_id not in {h.hold_id for h in in_force}:
            raise NotFoundError(f"no hold {hold_id!r} in force (see auditlog hold list)")
        fields = {"action": RELEASE, "principal": by, "reason": reason, "hold": hold_id}
        append_admin_record(
            conn,
            signer=signer,
            origin=origin,
            kind=RecordKind.ADMIN,
            fields=fields,
            now_ns=now,
        )
