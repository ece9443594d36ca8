"""Data keys of sealed payloads against the log (C16; docs/FORMAT.md section 7, step 8).

Pure: the per-log reports of :func:`~auditlog.ledger.verify.verify_log` (which remember each
sealed request's commitment to its wrapped data key, and each ``erasure`` record) and the stored
wrapped keys in; findings and the erased requests out. Needs no decryption key: the check
compares SHA-256 digests of wrapped keys only. For every sealed request of a log:

- its wrapped key is stored and hashes to the header's ``enc.dek`` (else ``key.mismatch``);
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

from auditlog.ledger.report import Erasure, FindingCode, FindingCollector, Report

__all__ = ["check_data_keys", "erasures_by_request"]


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
    stored: Mapping[str, Mapping[str, bytes]],
    *,
    erasures: Mapping[tuple[str, str], Erasure] | None,
) -> None:
    """Check each report's sealed requests against ``stored`` (log -> request id -> wrapped
    key bytes); fill ``Report.erased``. ``erasures`` None means the erasure records are not all
    known (some logs not read): an absent key then makes the log unproven, not failed."""
    for report in reports:
        keys = stored.get(report.log, {})
        out = FindingCollector(report)
        num_unknown = num_unanchored = 0
        for request_id, (index, digest) in report.sealed.items():
            wrapped = keys.get(request_id)
            erasure = None if erasures is None else erasures.get((report.log, request_id))
            if wrapped is None:
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
            actual = hashlib.sha256(wrapped).hexdigest()
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
