"""``auditlog serve``: the OpenAI-compatible inference server with auditing embedded.

Fail-closed by default (C21): a token leaves only once its record is durable. ``--fail-open``
streams at once and relies on the recorder's spool and gap alarms. There is no option, header or
body field that turns recording off (C23).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from auditlog.errors import ConfigurationError

from .options import (
    DbOption,
    RecorderOption,
    StateDirOption,
    read_signer,
    refuse_foreign_database,
)
from .startup import NewPaths, check_device, check_witnesses_first, require_engine, sqlite_files

__all__ = ["register"]


def serve(
    db: DbOption = "auditlog.db",
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    witness_dir: Annotated[
        Path, typer.Option("--witness-dir", help="Directory witness for checkpoints (C10)")
    ] = Path("witness"),
    key_file: Annotated[
        Path, typer.Option("--key-file", help="Checkpoint signing key (auditlog keygen)")
    ] = Path("auditlog.key"),
    api_keys: Annotated[
        Path, typer.Option("--api-keys", help='JSON {"keys": [{"sha256", "tenant", "principal"}]}')
    ] = Path("api-keys.json"),
    origin: Annotated[
        str | None, typer.Option("--origin", help="Log origin (default: the signing key's name)")
    ] = None,
    model_name: Annotated[str, typer.Option("--model-name")] = "auditlog-demo",
    device: Annotated[str, typer.Option("--device")] = "cpu",
    fail_open: Annotated[
        bool, typer.Option("--fail-open", help="Stream before records are durable (C21)")
    ] = False,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads")] = 1,
    state_dir: StateDirOption = None,
    recorder: RecorderOption = "thread",
    keyring: Annotated[
        Path | None,
        typer.Option(
            "--keyring",
            help="Payload encryption keyring (C16), created if missing "
            "(default: <key file>.keyring)",
        ),
    ] = None,
    no_encryption: Annotated[
        bool, typer.Option("--no-encryption", help="Record payloads unsealed (not recommended)")
    ] = False,
    retention: Annotated[
        Path | None,
        typer.Option("--retention", help="Retention policy file (C14); default class: default"),
    ] = None,
    max_payload_bytes: Annotated[
        int,
        typer.Option(
            "--max-payload-bytes",
            min=1,
            help="Largest request body (and prompt) recorded; a larger one gets 413 and a "
            "refusal record without content (default 1 MiB)",
        ),
    ] = 1 << 20,
    witness_policy: Annotated[
        Path | None,
        typer.Option(
            "--witness-policy",
            envvar="AUDITLOG_WITNESS_POLICY",
            help="Witness policy file: every checkpoint goes to its witnesses' URLs "
            "(C2SP tlog-witness) and their cosignatures are stored (docs/WITNESSES.md)",
        ),
    ] = None,
    tsa_url: Annotated[
        str | None,
        typer.Option(
            "--tsa-url",
            envvar="AUDITLOG_TSA_URL",
            help="RFC 3161 timestamp authority that stamps every checkpoint",
        ),
    ] = None,
    tsa_cert: Annotated[
        Path | None,
        typer.Option(
            "--tsa-cert",
            envvar="AUDITLOG_TSA_CERT",
            help="PEM: the TSA's certificate and its root; tokens that do not verify are not kept",
        ),
    ] = None,
) -> None:
    """Serve /v1/completions, /v1/chat/completions and /v1/models, recording every request.

    The database must answer when the server starts (it exits 2 with a message otherwise); once
    running, an outage is bridged by the spool in the state directory (docs/integrations.md).
    """
    from auditlog.cli import log_to_stderr

    log_to_stderr()
    require_engine("serve")  # fail early without the extra
    import torch

    from auditlog.recorder import FailMode
    from auditlog.recorder.kinds import RecorderKind
    from auditlog.recorder.spool import default_state_dir, spool_file
    from auditlog.server import ApiKeyTable, ServerSettings, create_app
    from auditlog.witnesses.settings import WitnessSettings

    from .serving import run_server

    # One intra-op thread by default: on a small machine more threads spin against the recorder
    # and the event loop (see the demo command).
    torch.set_num_threads(threads)
    check_device(device)
    signer = _read_key(key_file)
    if witness_dir.exists() and not witness_dir.is_dir():
        raise ConfigurationError(f"witness directory {witness_dir} is not a directory")
    log_origin = origin or signer.name
    new_keyring, key_provider = _keyring(key_file, keyring, no_encryption)
    anchors = WitnessSettings(policy_file=witness_policy, tsa_url=tsa_url, tsa_cert=tsa_cert)
    anchors.check()
    settings = ServerSettings(
        db_url=db,
        origin=log_origin,
        signers=[signer],
        api_keys=ApiKeyTable.from_file(api_keys),
        witness_dir=witness_dir,
        anchors=anchors,
        spool_path=spool_file(state_dir or default_state_dir(), log_origin),
        fail_mode=FailMode.OPEN if fail_open else FailMode.CLOSED,
        model_name=model_name,
        device=device,
        max_payload_bytes=max_payload_bytes,
        recorder_kind=RecorderKind(recorder),
        recorder_options=_recorder_options(key_provider, retention),
    )
    settings.validate()
    created = _create(settings, witness_dir, new_keyring)
    _announce(settings, witness_policy, tsa_url)
    try:
        run_server(create_app(settings), host=host, port=port)
    except ConfigurationError:  # it did not start (a port taken): nothing was recorded
        created.remove()
        raise


def _read_key(key_file: Path) -> Any:
    """The checkpoint signing key; a missing file is refused with a hint to create it."""
    if not key_file.exists():
        raise ConfigurationError(
            f"signing key {key_file} not found: create it with auditlog keygen"
        )
    return read_signer(key_file)


def _keyring(key_file: Path, keyring: Path | None, no_encryption: bool) -> tuple[Path | None, Any]:
    """(path of a keyring still to be created, key provider of an existing one); both None with
    ``--no-encryption``. An existing keyring is checked now; a missing one is created by
    :func:`_create` once the database is known to be usable (a refused start leaves no file
    behind)."""
    from auditlog.crypto import open_keyring

    if no_encryption:
        return None, None
    path = keyring or key_file.with_name(key_file.name + ".keyring")
    if not path.exists():
        return path, None
    return None, open_keyring(path)


def _recorder_options(key_provider: Any, retention: Path | None) -> dict[str, Any]:
    """The recorder's payload key provider (C16) and retention policy (C14)."""
    from auditlog.protect.retention import RetentionPolicy

    policy = RetentionPolicy.from_file(retention) if retention is not None else RetentionPolicy()
    return {"key_provider": key_provider, "retention": policy}


def _create(settings: Any, witness_dir: Path, new_keyring: Path | None) -> NewPaths:
    """Prepare the database (:func:`_prepare_database`), create the keyring ``new_keyring``
    names and the witness directory; the paths this created, to remove if the server does not
    start. A refused start creates nothing: what it made before the refusal is removed again."""
    from auditlog.crypto import open_keyring

    new_files = [new_keyring] if new_keyring is not None else []
    created = NewPaths(*sqlite_files(settings.db_url), witness_dir, *new_files)
    with created.removed_on_error():
        _prepare_database(settings)
        if new_keyring is not None and settings.recorder_options is not None:
            settings.recorder_options["key_provider"] = open_keyring(new_keyring)
        witness_dir.mkdir(parents=True, exist_ok=True)
    return created


def _announce(settings: Any, witness_policy: Path | None, tsa_url: str | None) -> None:
    """The lines ``serve`` prints before it starts: the log, its database and fail mode, and
    where checkpoints also go."""
    typer.echo(f"auditlog serve: log {settings.origin} in {settings.db_url} ({settings.fail_mode})")
    if settings.anchors.enabled:
        typer.echo(
            f"auditlog serve: checkpoints also go to witness policy {witness_policy or '-'}, "
            f"TSA {tsa_url or '-'}"
        )


def _prepare_database(settings: Any) -> None:
    """Migrate the database, replay a leftover spool and ask the witnesses now, so that a server
    that cannot record says why in one line and never starts (the recorder refuses a spool it
    cannot replay, and a database its witnesses have seen larger or different)."""
    from sqlalchemy.exc import SQLAlchemyError

    from auditlog.recorder import AuditRecorder
    from auditlog.recorder.spool import is_outage
    from auditlog.store import upgrade

    try:
        refuse_foreign_database(settings.db_url)
        witnesses = settings.anchors.recorder_witnesses(settings.db_url, settings.witness_dir)
        if settings.spool_path is not None and settings.spool_path.exists():
            # The spool first (its checkpoints may be what the witnesses hold); the recorder
            # then checks the database against the witnesses, as the server's would.
            upgrade(settings.db_url)
            AuditRecorder.open(
                settings.db_url,
                origin=settings.origin,
                signers=settings.signers,
                spool_path=settings.spool_path,
                witnesses=witnesses,
                close_witnesses=True,
                migrate=False,
            ).close()
        else:
            # Before the database is created or migrated: a refusal leaves it as it was (an
            # older schema is checked once migrated).
            checked = check_witnesses_first(settings.db_url, settings.origin, witnesses)
            upgrade(settings.db_url)
            if not checked:
                _check_witnesses(settings, witnesses)
    except SQLAlchemyError as exc:
        if not is_outage(exc):
            raise
        first = str(getattr(exc, "orig", exc)).strip().splitlines()
        raise ConfigurationError(
            "the database does not answer, and auditlog serve starts only with its database "
            f"({first[0] if first else type(exc).__name__}); start it again once the database "
            "is back"
        ) from None


def _check_witnesses(settings: Any, witnesses: list[Any]) -> None:
    """Refuse to start on a database that a witness has seen larger or different (a policy
    witness's latest cosigned checkpoint, the witness directory's newest note): the recorder
    would refuse it in the server's start-up, with a traceback; here it is one line
    (:class:`~auditlog.errors.LogRolledBackError`, exit 2). An unanswering witness does not
    stop the server (it is logged as a warning)."""
    from auditlog.recorder.recovery import check_database
    from auditlog.store import close_engine, create_db_engine

    engine = create_db_engine(settings.db_url)
    try:
        check_database(engine, settings.origin, witnesses)
    finally:
        close_engine(engine)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
