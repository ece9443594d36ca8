"""A throw-away PostgreSQL streaming replica of the test server, built with ``pg_basebackup``.

``streaming_replica(primary_url)`` copies the primary's cluster into a new directory (``-R -X
stream``: a standby that follows the primary), starts it on its own port and socket directory,
yields the URL of the same database on the replica, and stops and removes it afterwards, with
the replication slot that kept the primary's WAL for it.

Replication connections must be allowed by the primary's ``pg_hba.conf``. When they are not and
the test runs as root (as CI does), the line ``local replication all trust`` is appended to that
file and the server reloaded; the line is removed again afterwards. PostgreSQL's server refuses to
run as root: as root, the tools run as the ``postgres`` OS user (``runuser``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from auditlog.store.db import normalize_url

__all__ = ["find_pg_bin", "streaming_replica"]

HBA_LINE = "local replication all trust  # added by auditlog's replica test\n"
OS_USER = "postgres"


def find_pg_bin() -> Path | None:
    """The directory of the server binaries (pg_basebackup, pg_ctl), or None."""
    found = shutil.which("pg_basebackup")
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if (directory / "pg_ctl").exists() and (directory / "pg_basebackup").exists():
            return directory
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as_server_user(argv), capture_output=True, text=True, timeout=timeout, check=False
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _admin_sql(url: str, sql: str) -> str:
    engine = create_engine(normalize_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            return str(conn.execute(text(sql)).scalar())
    finally:
        engine.dispose()


@contextmanager
def _replication_allowed(primary_url: str, attempt: list[str]) -> Iterator[None]:
    """Run with replication connections allowed; ``attempt`` is a probe command."""
    probe = _run(attempt, timeout=30)
    if probe.returncode == 0 or "pg_hba.conf" not in probe.stderr or os.geteuid() != 0:
        yield
        return
    hba = Path(_admin_sql(primary_url, "SHOW hba_file"))
    original = hba.read_text()
    hba.write_text(HBA_LINE + original)  # first match wins: ahead of any reject line
    _admin_sql(primary_url, "SELECT pg_reload_conf()")
    try:
        yield
    finally:
        hba.write_text(original)
        _admin_sql(primary_url, "SELECT pg_reload_conf()")


@contextmanager
def streaming_replica(primary_url: str, bin_dir: Path) -> Iterator[str]:
    """Yield the URL of ``primary_url``'s database on a new streaming replica."""
    url = make_url(primary_url)
    host = url.query.get("host") or url.host or "/var/run/postgresql"
    host = host if isinstance(host, str) else host[0]
    port = str(url.port or 5432)
    root = Path(tempfile.mkdtemp(prefix="auditlog-replica-"))
    slot = f"auditlog_test_{uuid.uuid4().hex[:12]}"
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, OS_USER)
        shutil.chown(sockets, OS_USER)
    basebackup = [str(bin_dir / "pg_basebackup"), "-h", host, "-p", port]
    conninfo = f"host={host} port={port} dbname=postgres replication=true"
    probe = [str(bin_dir / "psql"), conninfo, "-c", "IDENTIFY_SYSTEM"]
    pg_ctl = str(bin_dir / "pg_ctl")
    try:
        # the replica streams from the primary for its whole life: replication stays allowed
        with _replication_allowed(primary_url, probe):
            # a slot keeps the WAL the replica still needs, however far the primary runs ahead
            slot_args = ["-C", "-S", slot]
            done = _run(
                [*basebackup, "-D", str(data), "-R", "-X", "stream", "-c", "fast", "-N", *slot_args]
            )
            if done.returncode != 0:
                raise RuntimeError(f"pg_basebackup failed: {done.stderr.strip()}")
            _add_config(data)
            replica_port = _free_port()
            options = f"-p {replica_port} -k {sockets} -c listen_addresses='' -c hot_standby=on"
            log = root / "log"
            start = _run([pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"])
            if start.returncode != 0:
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"replica did not start: {start.stderr.strip()} {tail}")
            try:
                yield url.set(
                    drivername="postgresql+psycopg",
                    host=None,
                    port=None,
                    query={"host": str(sockets), "port": str(replica_port)},
                ).render_as_string(hide_password=False)
            finally:
                _run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        _admin_sql(
            primary_url,
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            f"WHERE slot_name = '{slot}'",
        )
        shutil.rmtree(root, ignore_errors=True)


def _add_config(data: Path) -> None:
    """A packaged primary (Debian) keeps its configuration outside the data directory."""
    for name, content in (("postgresql.conf", ""), ("pg_hba.conf", "local all all trust\n")):
        if not (data / name).exists():
            (data / name).write_text(content)
            if os.geteuid() == 0:
                shutil.chown(data / name, OS_USER)
