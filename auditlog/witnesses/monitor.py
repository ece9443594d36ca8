"""Ask the witnesses what they last cosigned: rollback detection for ``auditlog verify``.

A resuming recorder asks the same question (:func:`ask_latest`, through
:meth:`~auditlog.witnesses.pool.WitnessPool.latest_cosigned`) and refuses to extend a database
that a witness has seen larger or different (``auditlog.recorder.recovery``).

Stored cosignatures prove that a checkpoint was witnessed, not that it is the latest one: an
administrator who cuts the log back to an earlier *witnessed* checkpoint (and deletes the newer
checkpoints and cosignatures with the records) leaves a database that verifies. The witnesses
know better: each keeps the latest checkpoint it cosigned for the log and serves it at
``GET <witness URL>/<hex SHA-256 of the origin>/checkpoint`` (the tlog-witness monitoring
endpoint: the log's signed note plus the witness's cosignature line).

:func:`ask_witnesses` fetches that note from every witness of the policy that has a URL and keeps
it only when the witness's cosignature verifies under the policy's key for it; the caller hands
the notes to the verifier as checkpoints kept outside the database, which reports a witness's
checkpoint larger than the log (``witness.rollback``) or with another root (``witness.rewrite``)
as an integrity failure. Witnesses are asked *before* the database is read, so a live log that
grows meanwhile is never mistaken for a rolled-back one. Fewer answers than the policy's quorum
leave the log unproven (``witness.unasked``): a rollback is not excluded.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field

from auditlog.errors import FormatError
from auditlog.ledger.checkpoint import parse_checkpoint
from auditlog.ledger.cosignature import note_cosignatures
from auditlog.ledger.note import split_note
from auditlog.ledger.witness_policy import PolicyWitness, WitnessPolicy
from auditlog.ledger.witnessed import WitnessFinding, WitnessFindingCode

from .protocol import MAX_RESPONSE_BYTES, WitnessRefused, WitnessUnavailable

__all__ = ["LatestAnswers", "WitnessAnswers", "ask_latest", "ask_witnesses", "latest_cosigned"]


def monitor_url(witness: PolicyWitness, origin: str) -> str:
    """``<witness URL>/<hex SHA-256 of the origin>/checkpoint``."""
    if witness.url is None:
        raise FormatError(f"witness {witness.name!r} has no URL to ask")
    digest = hashlib.sha256(origin.encode()).hexdigest()
    return f"{witness.url.rstrip('/')}/{digest}/checkpoint"


def latest_cosigned(witness: PolicyWitness, origin: str, *, timeout_s: float = 10.0) -> str | None:
    """The latest checkpoint note of ``origin`` that ``witness`` cosigned, its cosignature
    verified under the policy's key; None when the witness answers that it cosigned none (404).

    Raises :class:`WitnessUnavailable` (network error, another status) and
    :class:`WitnessRefused` (an answer that is not a note of this log cosigned by the witness).
    """
    request = urllib.request.Request(monitor_url(witness, origin), method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read(MAX_RESPONSE_BYTES)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code == 404:
                return None
            raise WitnessUnavailable(f"{witness.name}: HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
        raise WitnessUnavailable(f"{witness.name}: {exc}") from exc
    try:
        note: str = body.decode("utf-8")
        text = split_note(note)[0]
        found = parse_checkpoint(text).origin
    except (UnicodeDecodeError, FormatError) as exc:
        raise WitnessRefused(f"{witness.name}: not a checkpoint note: {exc}", 200) from None
    if found != origin:
        raise WitnessRefused(f"{witness.name}: answered a checkpoint of {found!r}", 200)
    if not any(witness.key.verify(c, text) for c in note_cosignatures(note)):
        raise WitnessRefused(f"{witness.name}: no cosignature of its key verifies", 200)
    return note


@dataclass(slots=True)
class LatestAnswers:
    """What each witness of a policy answered about one log: the verified notes it cosigned,
    the witnesses that cosigned none (404), and why the others gave no usable answer."""

    notes: dict[str, str] = field(default_factory=dict)  # policy name -> cosigned note
    none: list[str] = field(default_factory=list)  # policy names that cosigned nothing
    failed: dict[str, str] = field(default_factory=dict)  # policy name -> why no answer


def ask_latest(policy: WitnessPolicy, origin: str, *, timeout_s: float = 10.0) -> LatestAnswers:
    """Ask every witness of ``policy`` that has a URL for its latest cosigned checkpoint of
    ``origin`` (:func:`latest_cosigned`): the one place where ``auditlog verify
    --ask-witnesses`` and a resuming recorder ask."""
    answers = LatestAnswers()
    for witness in (w for w in policy.witnesses.values() if w.url is not None):
        try:
            note = latest_cosigned(witness, origin, timeout_s=timeout_s)
        except (WitnessUnavailable, WitnessRefused) as exc:
            answers.failed[witness.name] = str(exc)
            continue
        if note is None:
            answers.none.append(witness.name)
        else:
            answers.notes[witness.name] = note
    return answers


@dataclass(slots=True)
class WitnessAnswers:
    """What the witnesses said: the notes to check the database against, and the findings."""

    notes: list[str] = field(default_factory=list)
    findings: list[WitnessFinding] = field(default_factory=list)
    answered: dict[str, list[str]] = field(default_factory=dict)  # origin -> policy names


def ask_witnesses(
    policy: WitnessPolicy, origins: Iterable[str], *, timeout_s: float = 10.0
) -> WitnessAnswers:
    """Ask every witness of ``policy`` that has a URL for its latest cosigned checkpoint of each
    log in ``origins``; a log for which the answering witnesses do not satisfy the policy's
    quorum gets an unproven ``witness.unasked`` finding."""
    answers = WitnessAnswers()
    for origin in sorted(set(origins)):
        latest = ask_latest(policy, origin, timeout_s=timeout_s)
        answered = list(latest.notes)
        answers.notes += latest.notes.values()
        answers.answered[origin] = answered
        if not policy.satisfied(answered):
            why = list(latest.failed.values())
            why += [f"{name}: has cosigned no checkpoint of this log" for name in latest.none]
            message = (
                f"a rollback is not excluded: {len(answered)} witness(es) answered "
                f"({', '.join(answered) or 'none'}), fewer than quorum {policy.quorum!r}"
            )
            if why:
                message += f" ({'; '.join(why)})"
            answers.findings.append(
                WitnessFinding(origin, None, WitnessFindingCode.WITNESS_UNASKED, message)
            )
    return answers
