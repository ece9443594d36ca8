"""Data keys of sealed payloads against the log (C16; docs/FORMAT.md section 7, step 8).

Pure: the per-log reports of :func:`~auditlog.ledger.verify.verify_log` (which remember each
sealed request's commitment to its wrapped data key, and each ``erasure`` record) and the stored
wrapped keys in; findings and the erased requests out. Needs no decryption key: the check
compares SHA-256 digests of wrapped keys only. For every sealed request of a log:

- its wrapped key is stored and hashes to the header's ``enc.dek``, and the row's ``tenant`` and
  ``kek_id`` copy the header's ``tenant`` and ``enc.kek`` (else ``key.mismatch``: an erasure by
  tenant selects keys by that column, a reader unwraps with that KEK);
- or it is absent and an ``erasure`` record names it, covered by a checkpoint signed by a trusted
  key of its log (the request is then *erased* by that record; named only by an erasure no
  trusted checkpoint covers, the log is unproven); absent with no such record is ``key.absent``
  (deleted without an audited erasure: the tampering C16 forbids);
- present although an erasure names it is ``erasure.incomplete`` (the erasure claims more than
  happened);

and every stored key belongs to a sealed request of its log (else ``key.orphan``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from auditlog.ledger.report import Erasure, FindingCode, FindingCollector, Report

__all__ = ["StoredKey", "check_data_keys", "erasures_by_request", "key_matches_start"]


class StoredKey(Protocol):
    """A ``data_keys`` row (``auditlog.crypto.DataKey``)."""

    @property
    def tenant(self) -> str: ...
    @property
    def kek_id(self) -> str: ...
    @property
    def wrapped(self) -> bytes: ...


def erasures_by_request(reports: Sequence[Report]) -> dict[tuple[str, str], Erasure]:
    """(log, request id) -> the first erasure record naming it (a trusted one first), over every
    report; call it once every report has its ``anchored_size``."""
    found: dict[tuple[str, str], Erasure] = {}
    for report in reports:
        for index, h in report.erasures:
            erasure = Erasure(
                log=report.log,
                index=index,
                reason=h["reason"],
                legal_basis=h["legal_basis"],
                principal=h["principal"],
                ts=h["ts"],
                anchored=index < (report.anchored_size or 0),
            )
            for target in h["erased"]:
                key = (target["log"], target["request_id"])
                if key not in found or (erasure.anchored and not found[key].anchored):
                    found[key] = erasure
    return found


def check_data_keys(
    reports: Sequence[Report],
    stored: Mapping[str, Mapping[str, StoredKey]],
    *,
    erasures: Mapping[tuple[str, str], Erasure] | None,
) -> None:
    """Check each report's sealed requests against ``stored`` (log -> request id -> its
    ``data_keys`` row); fill ``Report.erased``. ``erasures`` None means the erasure records are
    not all known (some logs not read): an absent key then makes the log unproven, not failed."""
    for report in reports:
        keys = stored.get(report.log, {})
        out = FindingCollector(report)
        num_unknown = num_unanchored = 0
        for request_id, (index, digest) in report.sealed.items():
            row = keys.get(request_id)
            erasure = None if erasures is None else erasures.get((report.log, request_id))
            if row is None:
                if erasures is None:
                    num_unknown += 1
                elif erasure is None:
                    out.add(
                        index,
                        FindingCode.KEY_ABSENT,
                        digest,
                        "absent",
                        f"record {index}: the data key of request {request_id!r} is gone and no "
                        f"erasure record names it (deleted outside an audited erasure)",
                    )
                elif erasure.anchored:
                    report.erased[request_id] = erasure
                else:  # an unsigned (or untrusted) erasure proves nothing, and fails nothing yet
                    num_unanchored += 1
                continue
            _check_copies(out, index, request_id, row, report.starts.get(request_id, {}))
            actual = hashlib.sha256(row.wrapped).hexdigest()
            if actual != digest:
                out.add(
                    index,
                    FindingCode.KEY_MISMATCH,
                    digest,
                    actual,
                    f"record {index}: the stored data key of request {request_id!r} is not the "
                    f"one its request.start committed to",
                )
            if erasure is not None:
                out.add(
                    index,
                    FindingCode.ERASURE_INCOMPLETE,
                    "absent",
                    "present",
                    f"record {index}: erasure record {erasure.index} of {erasure.log} names "
                    f"request {request_id!r}, but its data key is still stored",
                )
        for request_id in sorted(set(keys) - set(report.sealed)):
            out.add(
                None,
                FindingCode.KEY_ORPHAN,
                "no data key",
                request_id,
                f"a data key is stored for request {request_id!r}, which no sealed "
                f"request.start of {report.log} names",
            )
        if num_unanchored:
            report.unproven.append(
                f"{num_unanchored} sealed request(s) have no data key and are named only by "
                f"erasure records that no trusted checkpoint covers"
            )
        if num_unknown:
            report.unproven.append(
                f"{num_unknown} sealed request(s) have no data key and the erasure records of "
                f"other logs were not read: verify the whole database to account for them"
            )


def _check_copies(
    out: FindingCollector, index: int, request_id: str, row: StoredKey, start: Mapping[str, object]
) -> None:
    """The row's ``tenant``/``kek_id`` against its ``request.start`` (a state file of an older
    run may lack the KEK id: then only the tenant is compared)."""
    committed = (start.get("tenant"), start.get("kek", row.kek_id))
    if committed != (row.tenant, row.kek_id):
        out.add(
            index,
            FindingCode.KEY_MISMATCH,
            f"tenant {committed[0]}, KEK {committed[1]}",
            f"tenant {row.tenant}, KEK {row.kek_id}",
            f"record {index}: the data_keys row of request {request_id!r} names tenant "
            f"{row.tenant!r} and KEK {row.kek_id!r}, its request.start {committed[0]!r} and "
            f"{committed[1]!r}",
        )


def key_matches_start(start: Mapping[str, Any], row: StoredKey) -> bool:
    """Whether ``row`` is the data key the sealed ``request.start`` header ``start`` committed
    to: its wrapped bytes hash to ``enc.dek`` and its ``tenant``/``kek_id`` copy the header's
    ``tenant`` and ``enc.kek`` (what :func:`check_data_keys` requires, for one trail's reader)."""
    enc = start.get("enc")
    if not isinstance(enc, Mapping):
        return False
    return (
        hashlib.sha256(row.wrapped).hexdigest() == enc.get("dek")
        and row.tenant == start.get("tenant")
        and row.kek_id == enc.get("kek")
    )
