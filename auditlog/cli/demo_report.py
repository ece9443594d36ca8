"""What ``auditlog demo`` prints: the transcripts coloured by provenance, the closing summary
table and the commands that check the run again."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["print_next_steps", "print_trail", "summary_table"]

_PROVENANCE_STYLE = {
    "target": "white",
    "draft_accepted": "green",
    "target_recovered": "yellow",
    "bonus": "magenta",
}


def summary_table(
    trails: list[Any],
    report: Any,
    *,
    engine: Any,
    recorder: Any,
    tenants: Sequence[str],
    db: str,
    witness_dir: Path,
    elapsed: float,
) -> Any:
    """The closing table: sizes, speculative decoding rates, the checkpoint and the verdict."""
    from rich.table import Table

    tokens = sum(len(t.token_ids) for t in trails)
    # A sequence's share of a target forward pass is one tokens record of that request.
    sequence_passes = sum(len(set(t.steps)) for t in trails)
    accepted = sum(p == "draft_accepted" for t in trails for p in t.provenance)
    proposed = sum(len(d) for t in trails for _, d in t.drafts)
    summary = Table(title="auditlog demo", show_header=False)
    summary.add_row("requests", str(len(trails)))
    summary.add_row("tenants", ", ".join(tenants))
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
    return summary


def print_next_steps(
    console: Any, db: str, witness_dir: Path, verifier_key: str, request_id: str
) -> None:
    """The legend of the transcripts' colours and the commands that check the run again."""
    console.print(
        "Legend: [green]draft accepted[/green] [yellow]target recovered[/yellow] "
        "[magenta]bonus[/magenta] target"
    )
    console.print(
        f"Verify again: auditlog verify --db {shlex.quote(db)} --witness-dir "
        f"{shlex.quote(str(witness_dir))} --key {shlex.quote(verifier_key)}",
        soft_wrap=True,
    )
    console.print(
        f"Replay a request alone and compare it token by token: auditlog replay --db "
        f"{shlex.quote(db)} --request {shlex.quote(request_id)} "
        f"--key {shlex.quote(verifier_key)}",
        soft_wrap=True,
    )


def print_trail(console: Any, trail: Any, engine: Any) -> None:
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
