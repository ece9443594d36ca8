"""Erasures against the legal holds in force where they were recorded (C15, C16).

Pure: the per-log reports of :func:`~auditlog.ledger.verify.verify_log` (which remember each
``admin`` and ``erasure`` record and the scope members of each sealed ``request.start``) in,
``erasure.held`` findings out. An administrative log is read in order: a ``hold.place`` record
puts its hold (``<log>#<index>``) in force, a ``hold.release`` naming it ends it. An ``erasure``
record that shreds a request some hold in force at that position covers is an integrity
failure: a hold overrides erasure (C15), and the erasing code refuses it (C16), so such a
record was forged, or written by code that skipped the check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from auditlog.errors import FormatError
from auditlog.ledger.report import FindingCode, FindingCollector, Report

__all__ = ["check_held_erasures"]

_PLACE, _RELEASE = "hold.place", "hold.release"


def _held_targets(
    h: dict[str, Any], holds: Mapping[str, Any], starts: Mapping[tuple[str, str], dict[str, Any]]
) -> list[tuple[str, str]]:
    """(request id, hold id) for each request the erasure ``h`` shreds under a hold in force."""
    found: list[tuple[str, str]] = []
    for target in h["erased"]:
        start = starts.get((target["log"], target["request_id"]))
        if start is None:  # not a sealed request of a log read here: key.* findings cover it
            continue
        found.extend((target["request_id"], hid) for hid, s in holds.items() if s.covers(start))
    return found


def _check_log(report: Report, starts: Mapping[tuple[str, str], dict[str, Any]]) -> None:
    from auditlog.protect.holds import HoldScope  # the one definition of what a scope covers

    holds: dict[str, HoldScope] = {}
    out = FindingCollector(report)
    for index, h in sorted(report.admin + report.erasures, key=lambda e: e[0]):
        action = h.get("action")
        if h["kind"] == "admin" and action == _PLACE and isinstance(h.get("scope"), dict):
            try:
                holds[f"{report.log}#{index}"] = HoldScope.from_json(h["scope"])
            except FormatError as exc:  # a hold nobody can apply: reported, never a crash
                out.add(index, FindingCode.HEADER_INVALID, "a hold scope", h["scope"], str(exc))
        elif h["kind"] == "admin" and action == _RELEASE:
            holds.pop(str(h.get("hold")), None)
        elif h["kind"] == "erasure":
            for request_id, hold_id in _held_targets(h, holds, starts):
                out.add(
                    index,
                    FindingCode.ERASURE_HELD,
                    "no hold in force",
                    f"hold {hold_id}",
                    f"erasure record {index} shreds request {request_id!r} under hold {hold_id}, "
                    f"in force at that position (C15)",
                )


def check_held_erasures(reports: Sequence[Report]) -> None:
    """Add ``erasure.held`` to each report whose erasure records shred a held request."""
    starts = {(r.log, rid): start for r in reports for rid, start in r.starts.items()}
    for report in reports:
        if report.erasures and report.admin:
            _check_log(report, starts)
