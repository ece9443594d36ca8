"""Helpers of the adapter tests: run an ASGI app under uvicorn, open a recorder, read trails."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from auditlog.errors import NoCheckpointError
from auditlog.gateway.openai_wire import FIELD_MARK, FIELD_NAME_END
from auditlog.ledger import DirectoryWitness, Signer
from auditlog.recorder import AuditRecorder
from auditlog.store import create_db_engine
from auditlog.trails import Trail, read_trail

STARTUP_TIMEOUT_S = 120.0


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 with an ephemeral port; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="auto")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(60)


def open_recorder(
    tmp: Path, origin: str, db_url: str | None = None
) -> tuple[AuditRecorder, Signer, str, Path]:
    db_url = db_url or f"sqlite:///{tmp / 'audit.db'}"
    witness = tmp / "witness"
    witness.mkdir(exist_ok=True)
    signer = Signer.generate(origin)
    recorder = AuditRecorder.open(
        db_url,
        origin=origin,
        signers=[signer],
        witnesses=[DirectoryWitness(witness)],
        spool_path=tmp / f"{abs(hash(origin))}.spool",
    )
    return recorder, signer, db_url, witness


def trail(db_url: str, origin: str, request_id: str, *, timeout: float = 30.0) -> Trail:
    """The request's closed trail as readers show it: readers show only what a signed checkpoint
    covers, so wait (up to ``timeout``) for the recorder's next checkpoint to cover its end."""
    engine = create_db_engine(db_url, read_only=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with engine.connect() as conn:
                    found = read_trail(conn, origin, request_id)
                if found.end is not None or time.monotonic() > deadline:
                    return found
            except NoCheckpointError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
    finally:
        engine.dispose()


def step_texts(t: Trail, *, delivered: bool = False) -> list[str]:
    """The recorded text of each step of a middleware trail (UTF-8 byte tokens), the delivered
    ones only if ``delivered``."""
    assert t.end is not None
    num = t.end["n_delivered"] if delivered else len(t.token_ids)
    groups = itertools.groupby(zip(t.steps[:num], t.token_ids[:num], strict=True), lambda p: p[0])
    return [bytes(tok for _, tok in group).decode("utf-8") for _, group in groups]


def trail_text(t: Trail, *, delivered: bool = True, marked: bool = False) -> str:
    """Content of a middleware trail: its steps but the marked ones (``openai_wire``: envelope,
    usage, logprobs, ...) unless ``marked``, the delivered ones only if ``delivered``."""
    steps = step_texts(t, delivered=delivered)
    return "".join(s for s in steps if marked or not s.startswith(FIELD_MARK))


def marked_values(t: Trail, name: str) -> list[str]:
    """The recorded values of the marked field ``name``, in order."""
    prefix = f"{FIELD_MARK}{name}{FIELD_NAME_END}"
    return [s.removeprefix(prefix) for s in step_texts(t) if s.startswith(prefix)]


@dataclass
class Audited:
    """A middleware under uvicorn: its URL, recorder, database and witness."""

    url: str
    recorder: AuditRecorder
    signer: Signer
    db_url: str
    origin: str

    def closed_trail(self, trail_id: str) -> Trail:
        self.recorder.wait_closed(trail_id, timeout=30)
        return trail(self.db_url, self.origin, trail_id)


@contextmanager
def audited_app(
    app: Any, tmp: Path, origin: str, db_url: str | None = None, *,
    wrap: Callable[[Any], Any] = lambda audited: audited, **middleware: Any,
) -> Iterator[Audited]:  # fmt: skip
    """``wrap(AuditMiddleware(app, ...))`` under uvicorn; the log verifies intact afterwards."""
    from auditlog.integrations.asgi import AuditMiddleware
    from auditlog.verifier import verify_database

    recorder, signer, db_url, witness = open_recorder(tmp, origin, db_url)
    try:
        with serve(wrap(AuditMiddleware(app, recorder=recorder, **middleware))) as url:
            yield Audited(url, recorder, signer, db_url, origin)
    finally:
        recorder.close()
    report = verify_database(db_url, keys=[signer.verifier_key], witness_dir=witness)
    assert report.ok, report.findings[:3]
