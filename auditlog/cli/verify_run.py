"""``auditlog verify``'s run of the verifier, with a progress bar per log on a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["run_verifier"]


def run_verifier(
    db: str,
    key: list[str] | None,
    witness_dir: Path | None,
    notes: list[str],
    log: str | None,
    request: str | None,
    max_pending_s: int | None,
    as_json: bool,
    *,
    standby: bool = False,
    jobs: int | None = None,
    resume: tuple[Path, Any] | None = None,
) -> Any:
    """``verify_database`` with the command's options (the report); ``resume`` is the
    ``--state`` file and its key."""
    from auditlog.verifier import verify_database
    from auditlog.verify_ranges import default_jobs

    with _progress(quiet=as_json) as (advance, on_log):
        return verify_database(
            db,
            keys=key or [],
            witness_dir=witness_dir,
            trusted_checkpoints=notes,
            origin=log,
            request_id=request,
            max_pending_s=max_pending_s,
            progress=advance,
            on_log=on_log,
            standby=standby,
            jobs=default_jobs() if jobs is None else jobs,
            state_path=None if resume is None else resume[0],
            state_key=None if resume is None else resume[1],
        )


@contextmanager
def _progress(*, quiet: bool) -> Iterator[tuple[Callable[[int], None], Callable[[str, int], None]]]:
    """A progress bar on stderr (none when it is not a terminal, or ``quiet``): yields the
    verifier's ``progress`` and ``on_log`` callbacks, a new bar per log."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]verifying[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal or quiet,
    ) as progress:
        task: list[Any] = []

        def on_log(origin: str, size: int) -> None:
            task.append(progress.add_task(escape(origin), total=size))

        def advance(n: int) -> None:
            if task:
                progress.update(task[-1], completed=n)

        yield advance, on_log
