"""``auditlog demo``: the reference engine with speculative decoding, recorded and verified.

Runs concurrent requests of several tenants through the engine (continuous batching, speculative
decoding with the demo model pair), records every event into a SQLite database with checkpoints in a
witness directory, verifies the result, and shows trails rebuilt from the database.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer

from auditlog.errors import ConfigurationError

from .options import (
    DbOption,
    RecorderOption,
    StateDirOption,
    read_text_file,
    refuse_foreign_database,
)
from .startup import NewPaths, check_device, check_witnesses_first, require_engine, sqlite_files

__all__ = ["DEMO_ORIGIN", "demo_requests", "register"]

DEMO_ORIGIN = "demo.auditlog.invalid/engine-0"

#: (request id, tenant, principal, prompt, sampling params) of one demo request.
_Job = tuple[str, str, str, str, Any]

_TENANTS = ("acme-bank", "globex-health", "initech-retail")


def _signer(key_file: Path) -> tuple[Any, bool]:
    """(signer, whether it is new and must still be saved with :func:`_save_key`)."""
    from auditlog.ledger import Signer

    if key_file.exists():
        text = read_text_file(key_file, "signing key file").strip()
        return Signer.from_key_string(text), False
    if not key_file.parent.is_dir():
        raise ConfigurationError(f"directory of the key file {key_file} does not exist")
    return Signer.generate(DEMO_ORIGIN), True


def _save_key(key_file: Path, signer: Any) -> None:
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(signer.key_string + "\n")


def demo_requests(n: int, seed: int) -> list[_Job]:
    """(request id, tenant, principal, prompt, params): mixed greedy and sampled settings."""
    import random
    import uuid

    from auditlog.engine.corpus import prompts
    from auditlog.engine.sampler import SamplingParams

    rng = random.Random(seed)
    out = []
    for i, prompt in enumerate(prompts(num_prompts=n, seed=seed)):
        tenant = _TENANTS[i % len(_TENANTS)]
        greedy = rng.random() < 0.5
        params = SamplingParams(
            temperature=0.0 if greedy else rng.choice((0.3, 0.5, 0.7)),
            top_k=0 if greedy else rng.choice((0, 20)),
            top_p=1.0 if greedy else rng.choice((0.9, 1.0)),
            max_tokens=rng.randint(32, 128),
            seed=rng.randrange(2**31),
            stop=("\nCustomer:",),
        )
        principal = f"user-{rng.randrange(100):03d}@{tenant}"
        out.append((f"demo-{uuid.uuid4().hex[:12]}", tenant, principal, prompt, params))
    return out


def demo(
    db: DbOption = "auditlog.db",
    requests: Annotated[int, typer.Option("--requests", "-n", min=1, max=512)] = 24,
    witness_dir: Annotated[Path, typer.Option("--witness-dir")] = Path("witness"),
    key_file: Annotated[Path, typer.Option("--key-file")] = Path("auditlog-demo.key"),
    show: Annotated[int, typer.Option("--show", help="Transcripts to print")] = 3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads")] = 1,
    state_dir: StateDirOption = None,
    recorder_kind: RecorderOption = "thread",
) -> None:
    """Generate, record, verify and show a batch of concurrent requests."""
    from auditlog.cli import log_to_stderr

    log_to_stderr()
    engine_class = require_engine("the demo")
    import torch
    from rich.console import Console

    from auditlog.verifier import verify_database

    from .demo_report import print_next_steps, print_trail, summary_table

    # One intra-op thread: on a small shared machine more threads spin against each other and
    # against the recorder's threads (measured: 20x slower steps with 2 threads under load).
    torch.set_num_threads(threads)
    check_device(device)
    console = Console()
    run = _open_demo(db, witness_dir, key_file, state_dir, recorder_kind, device, engine_class)
    jobs = demo_requests(requests, seed)
    elapsed = _generate(run, jobs, console)
    report = verify_database(db, witness_dir=witness_dir, keys=[run.signer.verifier_key])
    trails = _read_trails(db, run, jobs)
    for trail in trails[:show]:
        print_trail(console, trail, run.engine)
    console.print(
        summary_table(
            trails,
            report,
            engine=run.engine,
            recorder=run.recorder,
            tenants=_TENANTS,
            db=db,
            witness_dir=witness_dir,
            elapsed=elapsed,
        )
    )
    print_next_steps(console, db, witness_dir, run.signer.verifier_key, jobs[0][0])
    if report.verdict.exit_code != 0:
        raise typer.Exit(report.verdict.exit_code)


class _DemoRun(NamedTuple):
    """What a started demo works with: its signing key, keyring, recorder and engine."""

    signer: Any
    keyring: Any
    recorder: Any
    engine: Any


def _open_demo(
    db_url: str,
    witness_dir: Path,
    key_file: Path,
    state_dir: Path | None,
    recorder_kind: str,
    device: str,
    engine_class: Any,
) -> _DemoRun:
    """Run every check that can refuse, then create the database, the key, the keyring and the
    witness directory (removed again if a later step fails) and open the recorder and engine."""
    from auditlog.crypto import open_keyring
    from auditlog.ledger import DirectoryWitness
    from auditlog.recorder.spool import default_state_dir, spool_file
    from auditlog.store import create_db_engine, upgrade

    create_db_engine(db_url).dispose()  # checks the URL and the file's directory; opens nothing
    if witness_dir.exists() and not witness_dir.is_dir():
        raise ConfigurationError(f"witness directory {witness_dir} is not a directory")
    signer, new_key = _signer(key_file)
    refuse_foreign_database(db_url)
    keyring_file = key_file.with_name(key_file.name + ".keyring")
    # Payloads sealed by default (C16): a master keyring next to the signing key. An existing
    # one is checked now; every check that can refuse runs before anything is created.
    keyring = open_keyring(keyring_file, create=False) if keyring_file.exists() else None
    witness = DirectoryWitness(witness_dir)
    check_witnesses_first(db_url, DEMO_ORIGIN, [witness])
    spool = spool_file(state_dir or default_state_dir(), DEMO_ORIGIN)
    created = NewPaths(*sqlite_files(db_url), key_file, keyring_file, witness_dir)
    with created.removed_on_error():
        upgrade(db_url)  # the first thing created: the database
        if new_key:
            _save_key(key_file, signer)
        witness_dir.mkdir(parents=True, exist_ok=True)
        keyring = keyring or open_keyring(keyring_file)
        recorder = _open_recorder(db_url, recorder_kind, signer, witness, spool, keyring)
        try:
            engine = engine_class.demo(device=device, event_sink=recorder.record)
        except BaseException:
            recorder.close()
            raise
    return _DemoRun(signer, keyring, recorder, engine)


def _open_recorder(
    db_url: str, recorder_kind: str, signer: Any, witness: Any, spool: Path, keyring: Any
) -> Any:
    from auditlog.protect.retention import RetentionPolicy
    from auditlog.recorder.kinds import RecorderKind, open_recorder

    return open_recorder(
        RecorderKind(recorder_kind),
        db_url,
        origin=DEMO_ORIGIN,
        signers=[signer],
        witnesses=[witness],
        spool_path=spool,
        migrate=False,
        key_provider=keyring,
        retention=RetentionPolicy(),
    )


def _generate(run: _DemoRun, jobs: list[_Job], console: Any) -> float:
    """Run ``jobs`` to completion with a progress bar, close the recorder; the seconds taken."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    engine = run.engine
    total_tokens = sum(params.max_tokens for *_, params in jobs)
    t0 = time.perf_counter()
    try:
        for request_id, tenant, principal, prompt, params in jobs:
            engine.add_request(request_id, prompt, params, tenant=tenant, principal=principal)
        with Progress(
            TextColumn("[bold]generating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tokens"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("generate", total=total_tokens)
            while engine.has_unfinished():
                outputs = engine.step()
                progress.advance(task, sum(len(o.new_token_ids) for o in outputs))
            progress.update(task, total=progress.tasks[0].completed)
    finally:
        run.recorder.close()
    return time.perf_counter() - t0


def _read_trails(db_url: str, run: _DemoRun, jobs: list[_Job]) -> list[Any]:
    """The trails of ``jobs`` rebuilt from the database, trusting only the demo's own key."""
    from auditlog.store import create_db_engine
    from auditlog.trails import read_trail

    reader = create_db_engine(db_url, read_only=True)
    try:
        with reader.connect() as conn:
            trusted = [run.signer.verifier]  # show only what the demo's own key signed
            return [
                read_trail(conn, DEMO_ORIGIN, rid, trusted=trusted, keys=run.keyring)
                for rid, *_ in jobs
            ]
    finally:
        reader.dispose()


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
