"""Every command answers bad input with one clear line and exit 2: no traceback, nothing created
or changed (issue: bad input gets a clear message).

Property tests (hypothesis) run each subcommand in-process through the real ``auditlog`` app
(its root group is the one place errors become exit codes) with generated bad arguments, files
and environment values, in a fresh working directory, and compare a snapshot of every file the
command could touch before and after. A few cases run as real subprocesses, through ``main``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_files import snapshot, workdir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.ledger import DirectoryWitness, Signer
from auditlog.recorder import AuditRecorder
from auditlog.synthetic import SyntheticEngine

ORIGIN = "test.example/bad-input"
ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_PG = "postgresql://root@127.0.0.1:1/audit"
MISSING_PG = "postgresql://root@/auditlog_no_such_database?host=/var/run/postgresql"
SETTINGS = settings(
    max_examples=15,
    database=None,  # examples run in throw-away working directories
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Good:
    """A real, intact auditlog database with its witness and one exported bundle."""

    home: Path
    db: Path
    witness: Path
    key: str
    request_id: str
    bundle: Path
    api_key: Path  # a valid access-log signing key for `auditlog api`


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Good:
    home = tmp_path_factory.mktemp("good")
    signer = Signer.generate(ORIGIN)
    engine = SyntheticEngine(seed=3)
    db, witness = home / "audit.db", home / "witness"
    with AuditRecorder.open(
        f"sqlite:///{db}",
        origin=ORIGIN,
        signers=[signer],
        witnesses=[DirectoryWitness(witness)],
        spool_path=home / "spool",
    ) as recorder:
        for event in engine.run(4):
            recorder.record(event)
    request_id = next(iter(engine.truth))
    bundle = home / "trail.bundle"
    made = CliRunner().invoke(
        app, ["export", "--db", str(db), "--request", request_id, "--out", str(bundle)]
    )
    assert made.exit_code == 0, made.output
    api_key = home / "api.key"
    api_key.write_text(Signer.generate("api.example/access").key_string + "\n")
    return Good(home, db, witness, signer.verifier_key, request_id, bundle, api_key)


def _assert_refused(good: Good, args: Callable[[Path], list[str]], env: dict[str, str]) -> str:
    """Run ``auditlog <args(workdir)>``; assert exit 2, no traceback, nothing created or changed.

    Returns the output (stdout and stderr) for further checks.
    """
    with workdir() as work:
        argv = args(work)
        before = snapshot(work, good.home)
        env = {"AUDITLOG_STATE_DIR": str(work / "state"), **env}
        result = CliRunner().invoke(app, argv, env=env)
        after = snapshot(work, good.home)
    output = result.output
    assert result.exit_code == 2, (argv, env, output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        argv,
        result.exception,
    )
    assert "Traceback" not in output, output
    assert after == before, (argv, set(after) ^ set(before))
    return output


def _sqlite_of_another_application(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('x')")
    sqlite3.connect(path).close()


def _corrupted_copy(good: Good, path: Path, offset: int, noise: bytes) -> None:
    data = bytearray(good.db.read_bytes())
    start = offset % max(len(data) - len(noise), 1)
    data[start : start + len(noise)] = noise
    path.write_bytes(bytes(data[: max(len(data) // 3, 100)]))


# -- the --db option, in every command that takes one ------------------------------------------

BAD_FILE_KIND = st.sampled_from(["bytes", "text", "empty", "other-app", "corrupt", "directory"])
DB_COMMANDS: dict[str, Callable[[Good, str], list[str]]] = {
    "verify": lambda g, db: ["verify", "--db", db],
    "export": lambda g, db: ["export", "--db", db, "--request", g.request_id, "--out", "x.json"],
    "keys create": lambda g, db: ["keys", "create", "--db", db, "--role", "admin"],
    "keys list": lambda g, db: ["keys", "list", "--db", db],
    "keys revoke": lambda g, db: ["keys", "revoke", "--db", db, "k1"],
    "db upgrade": lambda g, db: ["db", "upgrade", "--db", db],
    "api": lambda g, db: ["api", "--db", db, "--signing-key", str(g.api_key), "--port", "9"],
    "erase": lambda g, db: [
        "erase",
        "--db",
        db,
        *_admin(g),
        "--legal-basis",
        "l",
        "--request",
        "r",
    ],
    "hold place": lambda g, db: ["hold", "place", "--db", db, *_admin(g), "--tenant", "acme"],
    "hold release": lambda g, db: ["hold", "release", "--db", db, *_admin(g), "h1"],
    "hold list": lambda g, db: ["hold", "list", "--db", db, "--key", g.key],
    "retention apply": lambda g, db: [
        "retention",
        "apply",
        "--db",
        db,
        "--key-file",
        str(g.api_key),
    ],
}


def _admin(good: Good) -> list[str]:
    """The options every administrative command takes: a valid signing key, who and why."""
    return ["--key-file", str(good.api_key), "--by", "a", "--reason", "r"]


def _bad_db_file(good: Good, work: Path, kind: str, blob: bytes, offset: int) -> str:
    path = work / "given.db"
    if kind == "bytes":
        path.write_bytes(b"\x00garbage" + blob)  # never a SQLite header
    elif kind == "text":
        path.write_text("not a database\n" + blob.decode("latin-1"), encoding="utf-8")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "other-app":
        _sqlite_of_another_application(path)
    elif kind == "corrupt":
        _corrupted_copy(good, path, offset, b"\xff" * 64 + blob)
    else:
        path.mkdir()
    return str(path)


@SETTINGS
@given(
    command=st.sampled_from(sorted(DB_COMMANDS)),
    kind=BAD_FILE_KIND,
    blob=st.binary(max_size=256),
    offset=st.integers(min_value=0, max_value=10**6),
    as_url=st.booleans(),
)
def test_db_option_refuses_files_that_are_not_auditlog_databases(
    good: Good, command: str, kind: str, blob: bytes, offset: int, as_url: bool
) -> None:
    if command == "db upgrade" and kind == "empty":
        return  # an empty file is a new, empty SQLite database: upgrade may create the schema

    def args(work: Path) -> list[str]:
        db = _bad_db_file(good, work, kind, blob, offset)
        return DB_COMMANDS[command](good, f"sqlite:///{db}" if as_url else db)

    _assert_refused(good, args, {})


@SETTINGS
@given(
    command=st.sampled_from(sorted(DB_COMMANDS)),
    db=st.sampled_from(
        [
            UNREACHABLE_PG,
            MISSING_PG,
            "mysql://root@127.0.0.1/audit",
            "sqlite://",
            "sqlite:///:memory:",
            "missing-dir/nested/audit.db",
            "",
            "   ",
        ]
    ),
    from_env=st.booleans(),
)
def test_db_option_refuses_urls_that_name_no_usable_database(
    good: Good, command: str, db: str, from_env: bool
) -> None:
    def args(work: Path) -> list[str]:
        argv = DB_COMMANDS[command](good, db)
        if from_env:
            i = argv.index("--db")
            del argv[i : i + 2]
        return argv

    _assert_refused(good, args, {"AUDITLOG_DB_URL": db} if from_env else {})


def test_missing_database_is_never_created(good: Good) -> None:
    for command in sorted(DB_COMMANDS):
        if command == "db upgrade":
            continue  # creating the database is what it is for

        def args(work: Path, command: str = command) -> list[str]:
            return DB_COMMANDS[command](good, str(work / "missing.db"))

        out = _assert_refused(good, args, {})
        assert "does not exist" in out, (command, out)


def test_db_upgrade_refuses_another_applications_database_without_yes(good: Good) -> None:
    def args(work: Path) -> list[str]:
        _sqlite_of_another_application(work / "crm.db")
        return ["db", "upgrade", "--db", str(work / "crm.db")]

    out = _assert_refused(good, args, {})
    assert "another application" in out and "--yes" in out
    with workdir() as work:
        _sqlite_of_another_application(work / "crm.db")
        result = CliRunner().invoke(app, ["db", "upgrade", "--db", "crm.db", "--yes"])
        assert result.exit_code == 0, result.output


def test_writers_refuse_another_applications_database(good: Good) -> None:
    """serve and demo add their tables to a database of other tables no more than db upgrade
    does without --yes; db upgrade --partitions on SQLite creates no file before refusing."""

    def crm(command: list[str]) -> Callable[[Path], list[str]]:
        def args(work: Path) -> list[str]:
            _sqlite_of_another_application(work / "crm.db")
            entry = {"sha256": hashlib.sha256(b"k").hexdigest(), "tenant": "a", "principal": "p"}
            (work / "api-keys.json").write_text(json.dumps({"keys": [entry]}))
            return [*command, "--db", str(work / "crm.db")]

        return args

    pytest.importorskip("torch")
    serve = ["serve", "--key-file", str(good.api_key), "--port", "1"]
    for command in (["demo", "--requests", "1"], serve):
        assert "another application" in _assert_refused(good, crm(command), {}), command
    out = _assert_refused(
        good, lambda w: ["db", "upgrade", "--db", "new.db", "--partitions", "4"], {}
    )
    assert "PostgreSQL" in out


# -- files given to options -------------------------------------------------------------------


@SETTINGS
@given(blob=st.binary(min_size=1, max_size=512), as_directory=st.booleans())
def test_binary_or_directory_trusted_checkpoint_and_key_files(
    good: Good, blob: bytes, as_directory: bool
) -> None:
    def given_file(work: Path) -> str:
        path = work / "given.note"
        if as_directory:
            path.mkdir()
        else:
            path.write_bytes(b"\xff\xfe" + blob)  # never UTF-8
        return str(path)

    _assert_refused(
        good,
        lambda w: ["verify", "--db", str(good.db), "--trusted-checkpoint", given_file(w)],
        {},
    )
    _assert_refused(good, lambda w: ["verify-bundle", str(good.bundle), "--key", given_file(w)], {})
    _assert_refused(
        good, lambda w: ["verify", "--db", str(good.db), "--witness-policy", given_file(w)], {}
    )
    admin = ["--by", "a", "--reason", "r"]
    for command in (
        ["erase", "--legal-basis", "l", "--request", "r", *admin],
        ["hold", "place", "--tenant", "acme", *admin],
        ["retention", "apply"],
    ):
        _assert_refused(
            good, lambda w, c=command: [*c, "--db", str(good.db), "--key-file", given_file(w)], {}
        )
    if as_directory:  # (a damaged bundle file is an integrity failure, exit 1: test_api_bundle)
        _assert_refused(good, lambda w: ["verify-bundle", given_file(w)], {})


@SETTINGS
@given(
    name=st.from_regex(r"\A[a-z0-9_.-]{1,20}\Z").map(lambda s: s + ".checkpoint"),
    blob=st.binary(max_size=256),
    as_directory=st.booleans(),
)
def test_witness_entry_that_is_not_a_checkpoint_is_refused_not_a_phantom_log(
    good: Good, name: str, blob: bytes, as_directory: bool
) -> None:
    def args(work: Path) -> list[str]:
        witness = work / "witness"
        witness.mkdir()
        for kept in good.witness.iterdir():
            (witness / kept.name).write_bytes(kept.read_bytes())
        if as_directory:
            (witness / name).mkdir()
        else:
            (witness / name).write_bytes(b"phantom.example/log\n" + blob)
        return ["verify", "--db", str(good.db), "--key", good.key, "--witness-dir", str(witness)]

    if name.startswith("."):
        return  # hidden files are not witness entries
    out = _assert_refused(good, args, {})
    assert "phantom.example/log" not in out.replace(name, "")


def test_export_refuses_a_directory_and_an_existing_file_without_force(good: Good) -> None:
    def export(out: str, *extra: str) -> list[str]:
        return ["export", "--db", str(good.db), "--request", good.request_id, "--out", out, *extra]

    def into_directory(work: Path) -> list[str]:
        (work / "out").mkdir()
        return export(str(work / "out"))

    def over_file(work: Path) -> list[str]:
        (work / "trail.bundle").write_bytes(b"keep me")
        return export(str(work / "trail.bundle"))

    assert "is a directory" in _assert_refused(good, into_directory, {})
    assert "--force" in _assert_refused(good, over_file, {})
    with workdir() as work:
        (work / "trail.bundle").write_bytes(b"replace me")
        result = CliRunner().invoke(app, export("trail.bundle", "--force"))
        assert result.exit_code == 0, result.output
        assert (work / "trail.bundle").read_bytes() == good.bundle.read_bytes()


# -- tenants and settings from the environment ------------------------------------------------


@SETTINGS
@given(
    tenant=st.one_of(
        st.text(min_size=1, max_size=30).filter(lambda t: "/" in t or not t[0].isalnum()),
        st.from_regex(r"\A[a-z]{1,8}/[a-z]{1,8}\Z"),
        st.just("x/y"),
    )
)
def test_one_tenant_rule_for_inference_keys_and_auditor_keys(good: Good, tenant: str) -> None:
    if "\x00" in tenant:
        return  # not representable in argv

    def client_key(work: Path) -> list[str]:
        keys = str(work / "api-keys.json")
        return ["client-key", "--tenant", tenant, "--principal", "p", "--api-keys", keys]

    def auditor_key(work: Path) -> list[str]:
        return ["keys", "create", "--db", str(good.db), "--role", "auditor", "--tenant", tenant]

    def hold(work: Path) -> list[str]:
        return ["hold", "place", "--db", str(good.db), *_admin(good), "--tenant", tenant]

    def erasure(work: Path) -> list[str]:
        order = ["--legal-basis", "l", "--tenant", tenant, "--principal", "p"]
        return ["erase", "--db", str(good.db), *_admin(good), *order]

    def keyring(work: Path) -> list[str]:
        return ["keyring", "create", str(work / "keyring"), "--tenant", tenant]

    for args in (client_key, auditor_key, hold, erasure, keyring):
        assert "tenant" in _assert_refused(good, args, {})


def _not_a_list_of_keys(value: str) -> bool:
    try:
        parsed = json.loads(value)
    except ValueError:
        return True
    return not (isinstance(parsed, list) and not parsed)


@SETTINGS
@given(
    trusted=st.one_of(
        st.just("abc"),
        st.text(max_size=40).filter(_not_a_list_of_keys),
        st.lists(st.text(max_size=20), min_size=1, max_size=3).map(json.dumps),
    )
)
def test_api_refuses_malformed_trusted_keys_before_starting(good: Good, trusted: str) -> None:
    if "\x00" in trusted:
        return  # not representable in an environment variable

    def args(work: Path) -> list[str]:
        key = work / "api.key"
        key.write_text(Signer.generate("api.example/access").key_string + "\n")
        return ["api", "--db", str(good.db), "--signing-key", str(key), "--port", "1"]

    _assert_refused(good, args, {"AUDITLOG_API_TRUSTED_KEYS": trusted})


def test_commands_with_files_of_their_own_refuse_bad_ones(good: Good) -> None:
    def demo_bad_db(work: Path) -> list[str]:
        (work / "rand.db").write_bytes(b"\x01" * 4096)
        return ["demo", "--db", "sqlite:///rand.db", "--requests", "1"]

    def serve_without_key(work: Path) -> list[str]:
        return ["serve", "--db", str(good.db), "--key-file", "missing.key"]

    def keygen_over_directory(work: Path) -> list[str]:
        (work / "k").mkdir()
        return ["keygen", "a.example/log", "--out", str(work / "k")]

    def client_key_bad_file(work: Path) -> list[str]:
        (work / "api-keys.json").write_bytes(b"\xff{not json")
        keys = str(work / "api-keys.json")
        return ["client-key", "--tenant", "acme", "--principal", "p", "--api-keys", keys]

    def serve_state_dir_a_file(work: Path) -> list[str]:
        (work / "state-file").write_text("not a directory\n")
        serve = ["serve", "--db", str(good.db), "--key-file", str(good.api_key), "--port", "1"]
        return [*serve, "--state-dir", str(work / "state-file")]

    pytest.importorskip("torch")
    for args in (demo_bad_db, serve_without_key, keygen_over_directory, client_key_bad_file):
        _assert_refused(good, args, {})
    assert "not a directory" in _assert_refused(good, serve_state_dir_a_file, {})
    _assert_refused(good, lambda w: ["bench", "no-such-benchmark"], {})


def test_demo_accepts_a_url_and_creates_nothing_before_refusing_a_bad_one(good: Good) -> None:
    pytest.importorskip("torch")
    out = _assert_refused(
        good, lambda w: ["demo", "--db", "sqlite:///missing-dir/x.db", "--requests", "1"], {}
    )
    assert "does not exist" in out


# -- through main(), as real processes --------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "--db", "{rand}"],
        ["verify", "--db", UNREACHABLE_PG],
        ["keys", "create", "--db", "{missing}", "--role", "admin"],
        ["client-key", "--tenant", "x/y", "--principal", "p", "--api-keys", "{keys}"],
    ],
)
def test_as_a_process_exit_2_one_line_no_traceback(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "rand.db").write_bytes(os.urandom(2048))
    names = {"rand": tmp_path / "rand.db", "missing": tmp_path / "m.db", "keys": tmp_path / "k"}
    argv = [a.format(**names) for a in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "auditlog", *argv],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "AUDITLOG_STATE_DIR": str(tmp_path / "s")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("auditlog ")


def test_api_refuses_an_unusable_admin_signing_key_before_starting(good: Good) -> None:
    """C15, C16: a missing or malformed ``--admin-signing-key``, or one named like the access
    log (one writer per log), is exit 2 with one line, before anything is opened."""

    def args_with(admin: str) -> Callable[[Path], list[str]]:
        def args(work: Path) -> list[str]:
            key = work / "api.key"
            key.write_text(Signer.generate("api.example/access").key_string + "\n")
            (work / "bad.key").write_text("not a key\n")
            admin_key = {"same": str(key), "bad": str(work / "bad.key")}.get(admin, admin)
            return [
                "api",
                "--db",
                str(good.db),
                "--origin",
                "api.example/access",
                "--signing-key",
                str(key),
                "--admin-signing-key",
                admin_key,
                "--port",
                "1",
            ]

        return args

    for admin, message in (
        ("missing.key", "cannot read API admin signing key"),
        ("bad", "is not a private note key"),
        ("same", "the administrative log needs a key of its own name"),
    ):
        assert message in _assert_refused(good, args_with(admin), {}), admin
