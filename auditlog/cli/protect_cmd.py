"""``auditlog keyring``, ``erase``, ``hold`` and ``retention`` (C14-C16)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from auditlog.errors import ConfigurationError

__all__ = ["register"]

WitnessOption = Annotated[
    Path | None,
    typer.Option("--witness-dir", help="Directory witness to hand the new checkpoint to (C10)"),
]


def _submit(engine: Any, origin: str, witness_dir: Path | None) -> None:
    """Hand the administrative log's newest checkpoint to the directory witness, if any."""
    if witness_dir is None:
        return
    from auditlog.ledger import DirectoryWitness
    from auditlog.protect.admin_log import hand_to_witnesses

    witness_dir.mkdir(parents=True, exist_ok=True)
    hand_to_witnesses(engine, origin, [DirectoryWitness(witness_dir)])


keyring_app = typer.Typer(help="Key-encryption keys of sealed payloads (local keyring file).")


@keyring_app.command("create")
def keyring_create(
    path: Annotated[
        Path, typer.Argument(help="Keyring file to create (mode 0600, never overwritten)")
    ],
    tenant: Annotated[
        list[str] | None,
        typer.Option(
            "--tenant",
            help="Give this tenant its own random KEK (repeatable); "
            "without any, a master key derives every tenant's KEK",
        ),
    ] = None,
) -> None:
    """Create a keyring of key-encryption keys. Keep it out of the database and its backups."""
    from auditlog.crypto import create_keyring

    create_keyring(path, tenants=tenant or None)
    typer.echo(f"created keyring {path}")


@keyring_app.command("export-tenant")
def keyring_export(
    source: Annotated[Path, typer.Argument(help="Keyring holding the tenant's KEK")],
    dest: Annotated[Path, typer.Argument(help="New keyring file with that tenant's KEK only")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant")],
) -> None:
    """Write a keyring holding one tenant's KEK: what that tenant's auditors are given."""
    from auditlog.crypto import export_tenant

    export_tenant(source, dest, tenant)
    typer.echo(f"wrote keyring {dest} for tenant {tenant}")


def erase(
    db: Annotated[str, typer.Option("--db", help="Database URL")],
    key_file: Annotated[
        Path, typer.Option("--key-file", help="Signing key of the administrative log")
    ],
    by: Annotated[str, typer.Option("--by", help="Who orders the erasure")],
    reason: Annotated[str, typer.Option("--reason", help="Why")],
    legal_basis: Annotated[str, typer.Option("--legal-basis", help='e.g. "GDPR Art. 17(1)(a)"')],
    request: Annotated[
        list[str] | None, typer.Option("--request", help="Request id to erase (repeatable)")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="With --principal")] = None,
    principal: Annotated[
        str | None, typer.Option("--principal", help="Erase this principal's requests in --tenant")
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="Erase this principal id's requests in every tenant"),
    ] = None,
    origin: Annotated[
        str | None,
        typer.Option(
            "--origin", help="Administrative log for the record (default: the key's name)"
        ),
    ] = None,
    witness_dir: WitnessOption = None,
) -> None:
    """Crypto-shred requests' payloads: a signed erasure record, then their data keys go."""
    from auditlog.ledger import Signer
    from auditlog.protect import ErasureOrder
    from auditlog.protect import erase as do_erase
    from auditlog.store import create_db_engine

    try:
        signer = Signer.from_key_string(key_file.read_text().strip())
    except FileNotFoundError:
        raise ConfigurationError(f"key file {key_file} not found") from None
    order = ErasureOrder(
        by=by,
        reason=reason,
        legal_basis=legal_basis,
        request_ids=request or (),
        tenant=tenant,
        principal=principal,
        subject=subject,
    )
    engine = create_db_engine(db)
    try:
        result = do_erase(engine, order, signer=signer, origin=origin)
    finally:  # a refusal is a signed record too
        _submit(engine, origin or signer.name, witness_dir)
        engine.dispose()
    typer.echo(
        f"erasure record {result.seq} of {result.origin}: erased {len(result.erased)} request(s): "
        + ", ".join(r for _, r in result.erased)
    )


hold_app = typer.Typer(help="Legal holds (C15): signed records that stop erasure and retention.")
retention_app = typer.Typer(help="Retention classes (C14).")

DbOption = Annotated[str, typer.Option("--db", envvar="AUDITLOG_DB_URL", help="Database URL")]
KeyFileOption = Annotated[
    Path, typer.Option("--key-file", help="Signing key of the administrative log")
]
OriginOption = Annotated[
    str | None,
    typer.Option("--origin", help="Administrative log for the record (default: the key's name)"),
]


def _signer(key_file: Path):  # type: ignore[no-untyped-def]
    from auditlog.ledger import Signer

    try:
        return Signer.from_key_string(key_file.read_text().strip())
    except FileNotFoundError:
        raise ConfigurationError(f"key file {key_file} not found") from None


def _ns(text: str | None) -> int | None:
    """Nanoseconds from decimal ns or an ISO 8601 time (UTC when no offset)."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"not a time: {text!r} (ISO 8601 or ns since the epoch)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


@hold_app.command("place")
def hold_place(
    db: DbOption,
    key_file: KeyFileOption,
    by: Annotated[str, typer.Option("--by", help="Who places the hold")],
    reason: Annotated[str, typer.Option("--reason", help="Why (case, regulator, order)")],
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    principal: Annotated[str | None, typer.Option("--principal")] = None,
    request: Annotated[str | None, typer.Option("--request")] = None,
    since: Annotated[
        str | None, typer.Option("--from", help="Requests started at or after")
    ] = None,
    until: Annotated[str | None, typer.Option("--to", help="Requests started before")] = None,
    origin: OriginOption = None,
    witness_dir: WitnessOption = None,
) -> None:
    """Place a legal hold (a signed record); prints its id."""
    from auditlog.protect import HoldScope, place_hold
    from auditlog.store import create_db_engine

    scope = HoldScope(
        tenant=tenant,
        principal=principal,
        request_id=request,
        start_ns=_ns(since),
        end_ns=_ns(until),
    )
    engine = create_db_engine(db)
    try:
        hold = place_hold(
            engine, scope, by=by, reason=reason, signer=_signer(key_file), origin=origin
        )
        _submit(engine, origin or _signer(key_file).name, witness_dir)
    finally:
        engine.dispose()
    typer.echo(hold.hold_id)


@hold_app.command("release")
def hold_release(
    db: DbOption,
    key_file: KeyFileOption,
    hold_id: Annotated[str, typer.Argument(help="Hold id (auditlog hold list)")],
    by: Annotated[str, typer.Option("--by", help="Who releases it")],
    reason: Annotated[str, typer.Option("--reason", help="Why")],
    origin: OriginOption = None,
    witness_dir: WitnessOption = None,
) -> None:
    """Release a legal hold (a signed record)."""
    from auditlog.protect import release_hold
    from auditlog.store import create_db_engine

    engine = create_db_engine(db)
    try:
        release_hold(engine, hold_id, by=by, reason=reason, signer=_signer(key_file), origin=origin)
        _submit(engine, origin or _signer(key_file).name, witness_dir)
    finally:
        engine.dispose()
    typer.echo(f"released {hold_id}")


@hold_app.command("list")
def hold_list(
    db: DbOption,
    key: Annotated[
        list[str],
        typer.Option(
            "--key",
            help="Verifier key of the administrative log, or a file of them (repeatable): only "
            "holds and releases its signed checkpoints cover count",
        ),
    ],
) -> None:
    """The holds in force, one JSON object per line."""
    import orjson

    from auditlog.cli.bundle_cmd import _keys
    from auditlog.ledger import Verifier
    from auditlog.protect import list_holds
    from auditlog.store import create_db_engine

    trusted = [Verifier.from_key_string(k) for k in _keys(key)]
    engine = create_db_engine(db, read_only=True)
    try:
        with engine.connect() as conn:
            holds = list_holds(conn, trusted)
    finally:
        engine.dispose()
    for h in holds:
        line = {"id": h.hold_id, "scope": h.scope.to_json(), "reason": h.reason, "by": h.placed_by}
        typer.echo(orjson.dumps({**line, "ts": str(h.placed_ts)}).decode())


@retention_app.command("apply")
def retention_apply(
    db: DbOption,
    key_file: KeyFileOption,
    now: Annotated[
        str | None, typer.Option("--now", help="The clock (ISO 8601 or ns; default: now)")
    ] = None,
    origin: OriginOption = None,
    witness_dir: WitnessOption = None,
) -> None:
    """Crypto-shred every request past its retention period that no hold covers."""
    import time

    from auditlog.protect import apply_retention
    from auditlog.store import create_db_engine

    engine = create_db_engine(db)
    try:
        result = apply_retention(
            engine, signer=_signer(key_file), origin=origin, now_ns=_ns(now) or time.time_ns()
        )
        _submit(engine, origin or _signer(key_file).name, witness_dir)
    finally:
        engine.dispose()
    if result is None:
        typer.echo("nothing is due")
    else:
        typer.echo(
            f"erasure record {result.seq} of {result.origin}: shredded {len(result.erased)} "
            "request(s): " + ", ".join(r for _, r in result.erased)
        )


def register(app: typer.Typer) -> None:
    app.add_typer(keyring_app, name="keyring")
    app.command("erase")(erase)
    app.add_typer(hold_app, name="hold")
    app.add_typer(retention_app, name="retention")
