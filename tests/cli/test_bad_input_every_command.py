"""Every subcommand, as the CLI lists it, refuses generated bad arguments, files and environment
values with one clear line and exit 2: no traceback, nothing created or changed (issue: bad input
gets a clear message).

The commands are discovered from the ``auditlog`` app itself, so a command added later is fuzzed
here without a change to this file. Each generated command line carries one input the command
cannot accept (a bad ``--db`` where it takes one; else bad values for its required parameters),
and any of its other options with generated bad values and flags; an option read from an
environment variable (``$AUDITLOG_DB_URL``, ``$AUDITLOG_STATE_DIR``, ...) is given there as often
as on the command line. Every value that names a file starts with ``./``, so that it is never a
valid tenant, benchmark or other name either. tests/cli/test_bad_input.py holds the cases of
specific inputs.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import typer.main
from cli_files import snapshot, workdir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from auditlog.cli import app

UNREACHABLE_PG = "postgresql://root@127.0.0.1:1/audit"
MISSING_PG = "postgresql://root@/auditlog_no_such_database?host=/var/run/postgresql"
#: Flags that give consent to what a refusal protects (db upgrade --yes on another
#: application's database, export --force over a file): never generated.
CONSENT_FLAGS = {"--yes", "--force"}
#: verify-bundle answers a damaged bundle file as an integrity failure (exit 1, docs/TRUST.md).
EXIT_CODES = {"verify-bundle": {1, 2}}
NEEDS_TORCH = {"demo", "serve", "replay"}


def _leaf_commands() -> dict[str, Any]:
    """``"group sub"`` -> the click command, for every runnable command of the app."""
    found: dict[str, Any] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            found[" ".join(path)] = command
            return
        for name, child in children.items():
            walk(child, (*path, name))

    walk(typer.main.get_command(app), ())
    if importlib.util.find_spec("torch") is None:
        return {k: v for k, v in found.items() if k not in NEEDS_TORCH}
    return found


COMMANDS = _leaf_commands()


def _make_files(work: Path, blob: bytes) -> None:
    """The bad files every value may name."""
    (work / "rand.db").write_bytes(b"\x00garbage" + blob)  # never a SQLite header
    (work / "text.db").write_text("not a database\n" + blob.decode("latin-1"), encoding="utf-8")
    (work / "empty").write_bytes(b"")
    (work / "adir").mkdir()
    with sqlite3.connect(work / "crm.db") as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    sqlite3.connect(work / "crm.db").close()


BAD_DBS = [
    "./rand.db",
    "./text.db",
    "./crm.db",
    "./adir",
    "./missing-dir/audit.db",
    "sqlite:///./missing-dir/audit.db",
    "sqlite://",
    UNREACHABLE_PG,
    MISSING_PG,
    " ",
]
BAD_FILES = ["./rand.db", "./text.db", "./crm.db", "./adir", "./empty", "./missing-dir/x"]
BAD_VALUES = st.one_of(
    st.sampled_from(BAD_FILES + BAD_DBS),
    st.text(min_size=1, max_size=20).filter(lambda t: "\x00" not in t and not t.startswith("-")),
)


def _value_params(command: Any) -> list[Any]:
    return [p for p in command.params if p.name != "help" and not getattr(p, "is_flag", False)]


def _command_line(name: str, data: st.DataObject) -> tuple[list[str], dict[str, str]]:
    """A command line of ``name`` that holds at least one input it cannot accept, and its
    environment."""
    command = COMMANDS[name]
    argv, env, arguments = name.split(), {}, []
    for param in _value_params(command):
        if "--db" in param.opts:
            value = data.draw(st.sampled_from(BAD_DBS), label="--db")
        elif param.required:
            value = data.draw(st.sampled_from(BAD_FILES), label=param.name)
        elif data.draw(st.integers(0, 3), label=f"give {param.name}") == 0:
            value = data.draw(BAD_VALUES, label=param.name)
        else:
            continue
        envvar = param.envvar if isinstance(param.envvar, str) else None
        if envvar and data.draw(st.booleans(), label=f"{param.name} from ${envvar}"):
            env[envvar] = value
        elif param.param_type_name == "argument":
            arguments.append(value)
        else:
            argv += [param.opts[0], value]
    for param in command.params:
        flag = param.opts[0] if param.opts else ""
        if (
            getattr(param, "is_flag", False)
            and flag not in CONSENT_FLAGS | {"--help"}
            and data.draw(st.booleans(), label=flag)
        ):
            argv.append(flag)
    return [*argv, *arguments], env


def test_every_command_is_discovered() -> None:
    """The walk finds the commands of every group (a broken walk would fuzz nothing)."""
    expected = {"verify", "export", "keys create", "db upgrade", "erase", "hold place"}
    expected |= {"hold list", "retention apply", "keyring create", "verify-bundle", "api"}
    assert expected <= set(COMMANDS), sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
@settings(
    max_examples=8,
    database=None,  # examples run in throw-away working directories
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), blob=st.binary(max_size=128))
def test_every_command_refuses_generated_bad_input(name: str, data: Any, blob: bytes) -> None:
    """Exit 2 (verify-bundle: 1 for a damaged bundle), one message, no traceback, and the working
    directory exactly as it was: nothing created, nothing changed."""
    with workdir() as work:
        _make_files(work, blob)
        argv, env = _command_line(name, data)
        before = snapshot(work)
        env = {"AUDITLOG_STATE_DIR": str(work / "state"), "HOME": str(work), **env}
        result = CliRunner().invoke(app, argv, env=env)
        after = snapshot(work)
    output = result.output
    assert result.exit_code in EXIT_CODES.get(name, {2}), (argv, env, output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        argv,
        env,
        repr(result.exception),
    )
    assert "Traceback" not in output, output
    assert output.strip(), (argv, "no message")
    assert after == before, (argv, env, set(after) ^ set(before))
