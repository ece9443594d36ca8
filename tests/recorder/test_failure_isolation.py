"""One event cannot stop the writer (issue 9, finding 1; C21, C23).

The gate refuses, in the caller's thread, every event that the canonical encoding would refuse
(lone surrogates in any string, floats and NaN, integers beyond ±(2^53-1), oversized fields) with
:class:`UnrecordableEventError`; and an event that still fails in the writer ends its own request
with an error record while every other request goes on. Every test runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from auditlog.errors import RecorderError, UnrecordableEventError
from auditlog.events import BatchStep, FinishReason, Provenance, RequestFinished, RequestStarted
from auditlog.ledger import DirectoryWitness, RecordKind, Signer, parse_header
from auditlog.recorder import AuditRecorder
from auditlog.recorder.checks import MAX_PAYLOAD_BYTES
from auditlog.store import create_db_engine, get_log_id, read_request
from auditlog.store.schema import records
from auditlog.synthetic import SyntheticEngine
from auditlog.trails import read_trail
from auditlog.verifier import verify_database

ORIGIN = "test.example/isolation"
LONE = "\ud800"


@pytest.fixture
def signer() -> Signer:
    return Signer.generate(ORIGIN)


def _open(db_url: str, signer: Signer, tmp_path: Path) -> AuditRecorder:
    return AuditRecorder.open(
        db_url,
        origin=ORIGIN,
        signers=[signer],
        witnesses=[DirectoryWitness(tmp_path / "witness")],
        spool_path=tmp_path / "spool.jsonl",
    )


def _run_clean(recorder: AuditRecorder, engine: SyntheticEngine, n: int) -> list[str]:
    """Record ``n`` well-formed requests to the end; return their ids."""
    starts = [engine.start(4) for _ in range(n)]
    for start in starts:
        recorder.record(start)
    while (step := engine.step()) is not None:
        recorder.record(step)
    for end in engine.finish_done():
        recorder.record(end)
    return [s.request_id for s in starts]


def _bad_starts(start: RequestStarted) -> dict[str, RequestStarted]:
    """One start per way the canonical encoding refuses a value."""
    r = dataclasses.replace
    return {
        "prompt": r(start, prompt_text=f"hello {LONE} world"),
        "stop string": r(start, params={**start.params, "stop": ["ok", LONE]}),
        "chat message": r(start, prompt_text=f"Customer: {LONE}\nAgent: "),
        "principal": r(start, principal=f"user{LONE}"),
        "tenant": r(start, tenant=f"t{LONE}"),
        "client": r(start, client=LONE),
        "engine": r(start, engine=f"e{LONE}"),
        "request id": r(start, request_id=f"id-{LONE}"),
        "param key": r(start, params={LONE: "1"}),
        "model name": r(start, target=dataclasses.replace(start.target, name=LONE)),
        "nan": r(start, params={"temperature": math.nan}),
        "inf": r(start, params={"temperature": math.inf}),
        "float": r(start, params={"top_p": 0.5}),
        "big int": r(start, params={"seed": 2**64}),
        "negative big int": r(start, params={"seed": -(2**60)}),
        "oversized prompt": r(start, prompt_text="x" * (MAX_PAYLOAD_BYTES + 1)),
        "oversized params": r(start, params={"stop": ["y" * 300_000]}),
        "ts beyond the ts column": r(start, ts=2**63),
        "ts of 20 digits": r(start, ts=10**20 - 1),
    }


def test_gate_refuses_what_encoding_would_refuse_and_writer_goes_on(
    db_url: str, signer: Signer, tmp_path: Path
) -> None:
    engine = SyntheticEngine(seed=5)
    with _open(db_url, signer, tmp_path) as recorder:
        template = engine.start(1)
        recorder.record(template)
        for what, bad in _bad_starts(dataclasses.replace(template, request_id="bad-0")).items():
            bad = dataclasses.replace(
                bad, request_id=bad.request_id.replace("bad-0", f"bad-{what}")
            )
            with pytest.raises(UnrecordableEventError) as caught:
                recorder.record(bad)
            assert "\ud800" not in str(caught.value), what  # the message itself is printable
        bad_end = RequestFinished(
            request_id=template.request_id,
            reason=FinishReason.ERROR,
            n_generated=0,
            n_delivered=0,
            ts=template.ts + 1,
            error=f"boom {LONE}",
        )
        with pytest.raises(UnrecordableEventError, match="lone UTF-16 surrogate"):
            recorder.record(bad_end)
        done = _run_clean(recorder, engine, 5)
        recorder.flush()
        for request_id in done:
            recorder.wait_closed(request_id, timeout=30)
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.ok, report.findings[:3]


def test_refused_start_refuses_that_request_alone(
    db_url: str, signer: Signer, tmp_path: Path
) -> None:
    """The engine goes on generating for a refused request: its tokens are left out of the
    steps, its end is dropped, its waiters get the refusal, every other request is recorded."""
    engine = SyntheticEngine(seed=7)
    with _open(db_url, signer, tmp_path) as recorder:
        good, doomed = engine.start(3), engine.start(3)
        recorder.record(good)
        with pytest.raises(UnrecordableEventError):
            recorder.record(dataclasses.replace(doomed, prompt_text=LONE))
        with pytest.raises(UnrecordableEventError):
            recorder.wait_durable(doomed.request_id, 1, timeout=5)
        while (step := engine.step()) is not None:
            recorder.record(step)  # carries the doomed request's tokens: admitted without them
        for end in engine.finish_done():
            recorder.record(end)  # the doomed request's end is dropped, not refused
        recorder.wait_closed(good.request_id, timeout=30)
    db = create_db_engine(db_url, read_only=True)
    with db.connect() as conn:
        log_id = get_log_id(conn, ORIGIN)
        assert read_request(conn, log_id, doomed.request_id) == []
        trail = read_trail(conn, ORIGIN, good.request_id)
    db.dispose()
    assert len(trail.token_ids) == 3 and trail.end is not None
    assert verify_database(db_url, keys=[signer.verifier_key]).ok


@pytest.mark.parametrize("ts", [2**63, 10**20 - 1])
def test_times_beyond_the_ts_column_are_refused_at_the_gate(
    db_url: str, signer: Signer, tmp_path: Path, ts: int
) -> None:
    """A time that the header's 20 digits allow but the store's signed 64-bit ``ts`` column does
    not (docs/FORMAT.md 3.1) is refused in the caller's thread, for a start, a step and an end:
    it used to pass the gate and stop the writer at the insert, for every tenant."""
    engine = SyntheticEngine(seed=13)
    with _open(db_url, signer, tmp_path) as recorder:
        good, late = engine.start(2), engine.start(1)
        engine.remaining.pop(late.request_id)  # the engine forgets the refused request
        recorder.record(good)
        with pytest.raises(UnrecordableEventError, match=r"2\^63"):
            recorder.record(dataclasses.replace(late, ts=ts))
        step = engine.step()
        assert step is not None
        with pytest.raises(UnrecordableEventError, match=r"2\^63"):
            recorder.record(dataclasses.replace(step, ts=ts))
        recorder.record(step)
        while (step := engine.step()) is not None:
            recorder.record(step)
        ends = engine.finish_done()
        for end in ends:
            if end.request_id == good.request_id:
                with pytest.raises(UnrecordableEventError, match=r"2\^63"):
                    recorder.record(dataclasses.replace(end, ts=ts))
            recorder.record(end)
        done = _run_clean(recorder, engine, 3)  # the writer is alive for everyone
        for request_id in [good.request_id, *done]:
            recorder.wait_closed(request_id, timeout=30)
        assert recorder._writer.is_alive()
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.ok, report.findings[:3]


def _slip_past_the_gate(recorder: AuditRecorder, event: object) -> None:
    """What a gate bug would let through: an event queued without the gate's checks."""
    recorder._queue.put(event)


def test_event_failing_in_the_writer_ends_only_its_request(
    db_url: str, signer: Signer, tmp_path: Path
) -> None:
    engine = SyntheticEngine(seed=11)
    with _open(db_url, signer, tmp_path) as recorder:
        victim, other = engine.start(2), engine.start(2)
        recorder.record(victim)
        recorder.record(other)
        step = engine.step()
        assert step is not None
        recorder.record(step)
        recorder.flush()
        # A tokens record whose payload cannot be encoded, for the victim only.
        _slip_past_the_gate(
            recorder,
            BatchStep(
                step_id=step.step_id + 100,
                ts=step.ts + 1,
                token_ids=(2**70,),
                request_ids=(victim.request_id,),
                provenance=(Provenance.TARGET,),
            ),
        )
        # A start that cannot be encoded at all (of a request the engine then forgets).
        ghost = dataclasses.replace(engine.start(1), prompt_text=LONE)
        engine.remaining.pop(ghost.request_id)
        _slip_past_the_gate(recorder, ghost)
        recorder.flush()
        with pytest.raises(RecorderError, match="not recorded"):
            recorder.wait_durable(victim.request_id, 10, timeout=5)
        # The writer is alive for everyone else: the other request runs on, new ones come in.
        later = _run_clean(recorder, engine, 3)
        for request_id in [other.request_id, *later]:
            recorder.wait_closed(request_id, timeout=30)
    db = create_db_engine(db_url, read_only=True)
    with db.connect() as conn:
        victim_trail = read_trail(conn, ORIGIN, victim.request_id)
        rows = read_request(conn, get_log_id(conn, ORIGIN), other.request_id)
        admin = [
            parse_header(bytes(body))
            for (body,) in conn.execute(
                select(records.c.body).where(records.c.kind == RecordKind.ADMIN.value)
            )
        ]
    db.dispose()
    assert victim_trail.end is not None and victim_trail.end["reason"] == "error"
    assert "could not record" in victim_trail.end["error"]
    assert victim_trail.end["n_generated"] == len(victim_trail.token_ids)
    assert [parse_header(r.body)["kind"] for r in rows][-1] == "request.end"
    assert len(admin) == 1 and admin[0]["action"] == "event.refused"
    assert admin[0]["subject"] == ghost.request_id
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.ok, report.findings[:3]


# -- fuzz: arbitrary strings, numbers and sizes through AuditRecorder.record ----------------------

_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    _text,
)
_params = st.dictionaries(_text, st.one_of(_json_scalar, st.lists(_json_scalar, max_size=3)))


@pytest.mark.parametrize("num_examples", [60])
def test_fuzzed_events_never_stop_the_writer(
    db_url: str, signer: Signer, tmp_path: Path, num_examples: int
) -> None:
    engine = SyntheticEngine(seed=3)
    ids = itertools.count()
    with _open(db_url, signer, tmp_path) as recorder:

        @settings(
            max_examples=num_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(
            prompt=_text,
            params=_params,
            principal=_text,
            tenant=_text,
            token_ids=st.lists(st.integers(min_value=-(2**64), max_value=2**64), max_size=5),
            pad=st.integers(min_value=0, max_value=3 * 2**20),
            error=_text,
        )
        def one(
            prompt: str,
            params: dict[str, Any],
            principal: str,
            tenant: str,
            token_ids: list[int],
            pad: int,
            error: str,
        ) -> None:
            base = engine.start(1)
            request_id = f"fuzz-{next(ids)}"
            start = dataclasses.replace(
                base,
                request_id=request_id,
                prompt_text=prompt + "p" * (pad * 8 if pad % 3 == 0 else pad % 7),
                params=params,
                principal=principal,
                tenant=tenant,
                prompt_token_ids=tuple(token_ids),
            )
            engine.remaining.pop(base.request_id)
            try:
                recorder.record(start)
            except UnrecordableEventError:
                return
            end = RequestFinished(
                request_id=request_id,
                reason=FinishReason.ERROR,
                n_generated=0,
                n_delivered=0,
                ts=start.ts + 1,
                error=error,
            )
            try:
                recorder.record(end)
            except UnrecordableEventError:
                recorder.record(dataclasses.replace(end, error="escaped"))

        one()
        done = _run_clean(recorder, engine, 4)  # other tenants are still served
        for request_id in done:
            recorder.wait_closed(request_id, timeout=60)
        assert recorder._writer.is_alive()
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.ok, report.findings[:3]
