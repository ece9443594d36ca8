"""``auditlog demo``: the reference engine with speculative decoding, recorded and verified.

Runs concurrent requests of several tenants through the engine (continuous batching, speculative
decoding with the demo model pair), records every event into a SQLite database with checkpoints in a
witness directory, verifies the result, and shows trails rebuilt from the database.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from auditlog.errors import ConfigurationError

from .options import (
    DbOption,
    RecorderOption,
    StateDirOption,
    read_text_file,
    refuse_foreign_database,
)
from .startup import NewPaths, check_device, check_witnesses_first, sqlite_files

__all__ = ["DEMO_ORIGIN", "demo_requests", "register"]

DEMO_ORIGIN = "demo.auditlog.invalid/engine-0"

_TENANTS = ("acme-bank", "globex-health", "initech-retail")
_PROVENANCE_STYLE = {
    "target": "white",
    "draft_accepted": "green",
    "target_recovered": "yellow",
    "bonus": "magenta",
}


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


def demo_requests(n: int, seed: int) -> list[tuple[str, str, str, str, Any]]:
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
    try:
        from auditlog.engine import LLMEngine
    except ImportError as exc:
        raise ConfigurationError(
            f"the demo needs the engine extra: pip install 'auditlog[engine]' ({exc})"
        ) from exc
    import torch
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table

    from auditlog.crypto import open_keyring
    from auditlog.ledger import DirectoryWitness
    from auditlog.protect.retention import RetentionPolicy
    from auditlog.recorder.kinds import RecorderKind, open_recorder
    from auditlog.recorder.spool import default_state_dir, spool_file
    from auditlog.store import create_db_engine, upgrade
    from auditlog.trails import read_trail
    from auditlog.verifier import verify_database

    # One intra-op thread: on a small shared machine more threads spin against each other and
    # against the recorder's threads (measured: 20x slower steps with 2 threads under load).
    torch.set_num_threads(threads)
    check_device(device)
    console = Console()
    db_url = db
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
        recorder = open_recorder(
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
        try:
            engine = LLMEngine.demo(device=device, event_sink=recorder.record)
        except BaseException:
            recorder.close()
            raise
    import shlex
    import time

    jobs = demo_requests(requests, seed)
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
        recorder.close()
    elapsed = time.perf_counter() - t0

    report = verify_database(db_url, witness_dir=witness_dir, keys=[signer.verifier_key])
    reader = create_db_engine(db_url, read_only=True)
    try:
        with reader.connect() as conn:
            trusted = [signer.verifier]  # show only what the demo's own key signed
            trails = [
                read_trail(conn, DEMO_ORIGIN, rid, trusted=trusted, keys=keyring)
                for rid, *_ in jobs
            ]
    finally:
        reader.dispose()
    for trail in trails[:show]:
        _print_trail(console, trail, engine)

    tokens = sum(len(t.token_ids) for t in trails)
    # A sequence's share of a target forward pass is one tokens record of that request.
    sequence_passes = sum(len(set(t.steps)) for t in trails)
    accepted = sum(p == "draft_accepted" for t in trails for p in t.provenance)
    proposed = sum(len(d) for t in trails for _, d in t.drafts)
    summary = Table(title="auditlog demo", show_header=False)
    summary.add_row("requests", str(len(trails)))
    summary.add_row("tenants", ", ".join(_TENANTS))
    summary.add_row("physical steps (batched target passes)", str(engine.step_id))
    summary.add_row("tokens generated", str(tokens))
    per_pass = tokens / max(sequence_passes, 1)
    summary.add_row("tokens per sequence per target pass", f"{per_pass:.2f}")
    summary.add_row("draft acceptance rate", f"{accepted / max(proposed, 1):.2f}")
    summary.add_row("records written", str(recorder.stats.records))
    note_lines = (recorder.last_checkpoint_note or "").splitlines()
    summary.add_row("checkpoint", " ".join(note_lines[1:3]) if len(note_lines) > 2 else "none")
    summary.add_row("database", f"{db} ({report.records} records in the whole log)")
    summary.add_row("witness", str(witness_dir))
    summary.add_row(
        "verification",
        "[green]intact[/green]"
        if report.verdict.exit_code == 0
        else f"[red]{report.verdict}[/red]: {report.findings[:3] or report.logs[0].unproven[:1]}",
    )
    summary.add_row("throughput", f"{tokens / elapsed:.0f} tokens/s, {elapsed:.1f} s")
    console.print(summary)
    console.print(
        "Legend: [green]draft accepted[/green] [yellow]target recovered[/yellow] "
        "[magenta]bonus[/magenta] target"
    )
    console.print(
        f"Verify again: auditlog verify --db {shlex.quote(db)} --witness-dir "
        f"{shlex.quote(str(witness_dir))} --key {shlex.quote(signer.verifier_key)}",
        soft_wrap=True,
    )
    console.print(
        f"Replay a request alone and compare it token by token: auditlog replay --db "
        f"{shlex.quote(db)} --request {shlex.quote(jobs[0][0])} "
        f"--key {shlex.quote(signer.verifier_key)}",
        soft_wrap=True,
    )
    if report.verdict.exit_code != 0:
        raise typer.Exit(report.verdict.exit_code)


def _print_trail(console: Any, trail: Any, engine: Any) -> None:
    from rich.text import Text

    tokenizer = engine.tokenizer
    text = Text()
    text.append(trail.prompt_text or "", style="bold")
    for token_id, prov in zip(trail.token_ids, trail.provenance, strict=True):
        piece = "\ufffd" if token_id is None else tokenizer.decode([token_id])  # unreadable
        text.append(piece, style=_PROVENANCE_STYLE[str(prov)])
    reason = trail.reason.value if trail.reason else "open"
    console.rule(f"{trail.request_id}  tenant={trail.tenant}  end={reason}")
    console.print(text)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
