"""``auditlog keyring``, ``erase``, ``hold`` and ``retention`` (C14-C16)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from auditlog.errors import ConfigurationError

from .options import DbOption, open_store, parse_tenant, read_signer

__all__ = ["register"]

TenantOption = Annotated[str | None, typer.Option("--tenant", parser=parse_tenant)]

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
            parser=parse_tenant,
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
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant", parser=parse_tenant)],
) -> None:
    """Write a keyring holding one tenant's KEK: what that tenant's auditors are given."""
    from auditlog.crypto import export_tenant

    export_tenant(source, dest, tenant)
    typer.echo(f"wrote keyring {dest} for tenant {tenant}")


def erase(
    db: DbOption,
    key_file: Annotated[
        Path, typer.Option("--key-file", help="Signing key of the administrative log")
    ],
    by: Annotated[str, typer.Option("--by", help="Who orders the erasure")],
    reason: Annotated[str, typer.Option("--reason", help="Why")],
    legal_basis: Annotated[str, typer.Option("--legal-basis", help='e.g. "GDPR Art. 17(1)(a)"')],
    request: Annotated[
        list[str] | None, typer.Option("--request", help="Request id to erase (repeatable)")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="With --principal", parser=parse_tenant)
    ] = None,
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
    from auditlog.protect import ErasureOrder
    from auditlog.protect import erase as do_erase

    signer = read_signer(key_file)
    _check_witness_dir(witness_dir)
    order = ErasureOrder(
        by=by,
        reason=reason,
        legal_basis=legal_basis,
        request_ids=request or (),
        tenant=tenant,
        principal=principal,
        subject=subject,
    )
    with open_store(db) as engine:
        try:
            result = do_erase(engine, order, signer=signer, origin=origin)
        finally:  # a refusal is a signed record too
            _submit(engine, origin or signer.name, witness_dir)
    typer.echo(
        f"erasure record {result.seq} of {result.origin}: erased {len(result.erased)} request(s): "
        + ", ".join(r for _, r in result.erased)
    )


hold_app = typer.Typer(help="Legal holds (C15): signed records that stop erasure and retention.")
retention_app = typer.Typer(help="Retention classes (C14).")

KeyFileOption = Annotated[
    Path, typer.Option("--key-file", help="Signing key of the administrative log")
]
OriginOption = Annotated[
    str | None,
    typer.Option("--origin", help="Administrative log for the record (default: the key's name)"),
]


def _check_witness_dir(witness_dir: Path | None) -> None:
    """Refuse a ``--witness-dir`` that is a file before anything is written."""
    if witness_dir is not None and witness_dir.exists() and not witness_dir.is_dir():
        raise ConfigurationError(f"witness directory {witness_dir} is not a directory")


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
    tenant: TenantOption = None,
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

    signer = read_signer(key_file)
    _check_witness_dir(witness_dir)
    scope = HoldScope(
        tenant=tenant,
        principal=principal,
        request_id=request,
        start_ns=_ns(since),
        end_ns=_ns(until),
    )
    with open_store(db) as engine:
        hold = place_hold(engine, scope, by=by, reason=reason, signer=signer, origin=origin)
        _submit(engine, origin or signer.name, witness_dir)
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

    signer = read_signer(key_file)
    _check_witness_dir(witness_dir)
    with open_store(db) as engine:
        release_hold(engine, hold_id, by=by, reason=reason, signer=signer, origin=origin)
        _submit(engine, origin or signer.name, witness_dir)
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

    trusted = [Verifier.from_key_string(k) for k in _keys(key)]
    with open_store(db, read_only=True) as engine, engine.connect() as conn:
        holds = list_holds(conn, trusted)
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

    signer, now_ns = read_signer(key_file), _ns(now) or time.time_ns()
    _check_witness_dir(witness_dir)
    with open_store(db) as engine:
        result = apply_retention(engine, signer=signer, origin=origin, now_ns=now_ns)
        _submit(engine, origin or signer.name, witness_dir)
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
