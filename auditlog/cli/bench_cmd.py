"""``auditlog bench``: run the benchmarks in ``bench/``.

Every figure is a ratio to a baseline measured in the same run.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Annotated

import typer

from auditlog.errors import ConfigurationError

__all__ = ["register"]

BENCHMARKS = ("ledger", "verify", "recorder", "engine", "api", "server", "cli_start", "fleet")


def _bench_dir() -> Path:
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / "bench").is_dir():
            return base / "bench"
    raise ConfigurationError("no bench/ directory: run from a checkout of the auditlog repository")


def bench(
    name: Annotated[str, typer.Argument(help="One of: " + ", ".join(BENCHMARKS))],
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for the benchmark")] = None,
) -> None:
    """Run bench/NAME.py and print its figures."""
    if name not in BENCHMARKS:
        raise ConfigurationError(f"unknown benchmark {name!r}: expected one of {BENCHMARKS}")
    script = _bench_dir() / f"{name}.py"
    if not script.exists():
        raise ConfigurationError(f"{script} does not exist")
    sys.argv = [str(script), *(args or [])]
    runpy.run_path(str(script), run_name="__main__")


def register(app: typer.Typer) -> None:
    app.command(
        "bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
    )(bench)
