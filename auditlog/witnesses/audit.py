"""``auditlog verify --witness-key/--witness-policy``: check a database's stored cosignatures.

The I/O edge of :func:`auditlog.ledger.witnessed.check_witnessed`: reads each log's checkpoints
and cosignatures (read-only) and checks them against the policy. The log sizes come from the
ledger verifier's report, which has already checked every checkpoint against the records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509

from auditlog.errors import ConfigurationError, FormatError
from auditlog.ledger.checkpoint import parse_checkpoint
from auditlog.ledger.cosignature import (
    Cosignature,
    CosignerKey,
    note_cosignatures,
    without_cosignatures,
)
from auditlog.ledger.note import split_note
from auditlog.ledger.witness_policy import WitnessPolicy
from auditlog.ledger.witnessed import WitnessFinding, WitnessFindingCode, check_witnessed
from auditlog.store import create_db_engine, list_checkpoints, list_logs
from auditlog.store.cosignatures import list_cosignatures
from auditlog.store.timestamps import list_timestamps

from .monitor import WitnessAnswers, ask_witnesses
from .tsa import TimestampError, verify_timestamp

__all__ = [
    "ask_about_database",
    "check_bundle_timestamp",
    "check_database_cosignatures",
    "check_database_timestamps",
    "check_note_cosignatures",
    "load_policy",
]


def load_policy(keys: Sequence[str], policy_path: Path | None) -> WitnessPolicy | None:
    """The policy of a policy file, or ``all`` of the given witness keys; None with neither.

    A file and keys together are refused: the file alone says who counts and how many.
    """
    if policy_path is not None and keys:
        raise ConfigurationError("give --witness-policy or --witness-key, not both")
    try:
        if policy_path is not None:
            try:
                text = policy_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read witness policy {policy_path}: {exc}"
                ) from exc
            except UnicodeDecodeError:
                raise ConfigurationError(
                    f"witness policy {policy_path} is not a text file (not UTF-8)"
                ) from None
            return WitnessPolicy.parse(text)
        if keys:
            return WitnessPolicy.all_of(CosignerKey.from_key_string(k) for k in keys)
    except FormatError as exc:
        raise ConfigurationError(f"bad witness policy: {exc}") from exc
    return None


def check_database_cosignatures(
    db_url: str, policy: WitnessPolicy, sizes: Mapping[str, int]
) -> tuple[list[WitnessFinding], dict[str, int | None]]:
    """Check the cosignatures of every log in ``sizes`` (origin -> verified record count).
    Returns the findings and, per log, the largest size whose checkpoint the policy accepts."""
    engine = create_db_engine(db_url, read_only=True)
    findings: list[WitnessFinding] = []
    witnessed: dict[str, int | None] = {}
    try:
        with engine.connect() as conn:
            ids = {log.origin: log.id for log in list_logs(conn)}
            for origin, size in sizes.items():
                log_id = ids.get(origin)
                bodies: dict[int, str] = {}
                malformed: set[int] = set()  # the ledger verifier reports them (checkpoint.invalid)
                cosigs: dict[int, list[Cosignature]] = {}
                if log_id is not None:
                    for stored in list_checkpoints(conn, log_id):
                        try:
                            bodies[stored.size] = split_note(stored.note)[0]
                        except FormatError:
                            malformed.add(stored.size)
                    cosigs = list_cosignatures(conn, log_id)
                kept = {s: c for s, c in cosigs.items() if s not in malformed}
                found, witnessed[origin] = check_witnessed(origin, size, bodies, kept, policy)
                findings += found
    finally:
        engine.dispose()
    return findings, witnessed


def check_note_cosignatures(origin: str, note: str, policy: WitnessPolicy) -> list[WitnessFinding]:
    """Check the cosignature lines a checkpoint note carries (an evidence bundle's) against the
    policy: the note's own tree is what must be covered."""
    text = split_note(note)[0]
    size = parse_checkpoint(text).size
    return check_witnessed(origin, size, {size: text}, {size: note_cosignatures(note)}, policy)[0]


def check_bundle_timestamp(
    origin: str, note: str, token: bytes | None, certs: Sequence[x509.Certificate]
) -> tuple[list[WitnessFinding], datetime | None]:
    """Check an evidence bundle's RFC 3161 token over its checkpoint (the log's note as stored,
    i.e. ``note`` without the cosignature lines the bundle adds): a token that does not verify
    fails, a bundle without one is unproven. Returns the findings and the trusted time."""
    size = parse_checkpoint(split_note(note)[0]).size
    if token is None:
        message = f"the bundle carries no timestamp of its checkpoint at size {size}"
        return [_finding(origin, size, TIMESTAMP_MISSING, message)], None
    try:
        return [], verify_timestamp(token, without_cosignatures(note), certs)
    except TimestampError as exc:
        return [_finding(origin, size, TIMESTAMP_INVALID, exc)], None


def check_database_timestamps(
    db_url: str, certs: Sequence[x509.Certificate], sizes: Mapping[str, int]
) -> tuple[list[WitnessFinding], dict[str, datetime]]:
    """Check every stored RFC 3161 timestamp of the logs in ``sizes`` against the TSA's
    certificates: one that does not verify over its checkpoint's note is an integrity failure;
    a log whose full-size checkpoint has no timestamp is unproven. Returns the findings and,
    per log, the trusted time of its full-size checkpoint."""
    findings: list[WitnessFinding] = []
    times: dict[str, datetime] = {}
    engine = create_db_engine(db_url, read_only=True)
    try:
        with engine.connect() as conn:
            ids = {log.origin: log.id for log in list_logs(conn)}
            for origin, size in sizes.items():
                log_id = ids.get(origin)
                if log_id is None:
                    continue
                notes = {c.size: c.note for c in list_checkpoints(conn, log_id)}
                for stamp in list_timestamps(conn, log_id):
                    try:
                        when = verify_timestamp(stamp.response, notes[stamp.size], certs)
                    except (KeyError, TimestampError) as exc:
                        findings.append(_finding(origin, stamp.size, TIMESTAMP_INVALID, exc))
                        continue
                    if stamp.size == size:
                        times[origin] = when
                if size and origin not in times:
                    message = f"no valid timestamp of the checkpoint at size {size}"
                    findings.append(_finding(origin, size, TIMESTAMP_MISSING, message))
    finally:
        engine.dispose()
    return findings, times


TIMESTAMP_INVALID = WitnessFindingCode.TIMESTAMP_INVALID
TIMESTAMP_MISSING = WitnessFindingCode.TIMESTAMP_MISSING


def _finding(origin: str, size: int, code: WitnessFindingCode, what: object) -> WitnessFinding:
    if isinstance(what, KeyError):
        what = f"a timestamp of a checkpoint at size {size} that the log does not hold"
    return WitnessFinding(origin, size, code, str(what))


def ask_about_database(
    db_url: str, policy: WitnessPolicy, *, origin: str | None, keys: Sequence[str]
) -> WitnessAnswers:
    """Ask the policy's witnesses for their latest view of the logs ``verify`` will check: the
    one named ``origin``, else every log of the database and every origin a ``--key`` names (a
    log deleted whole is still asked about). Call it before the database is verified."""
    if not any(w.url is not None for w in policy.witnesses.values()):
        raise ConfigurationError(
            "--ask-witnesses needs a --witness-policy whose witnesses have URLs"
        )
    origins = {origin} if origin is not None else {k.strip().split("+", 1)[0] for k in keys}
    if origin is None:
        engine = create_db_engine(db_url, read_only=True)
        try:
            with engine.connect() as conn:
                origins |= {log.origin for log in list_logs(conn)}
        finally:
            engine.dispose()
    return ask_witnesses(policy, origins)
