"""The gate checks a step's request ids once, at their start, and still refuses every bad one.

A step's ids that belong to open requests were checked when those requests started; the gate
does not scan them again (recorder/checks.py). These tests play the engine that tries to slip a
bad id past that shortcut (C23: nothing in an event may stop or bend the recording).
"""

from __future__ import annotations

import dataclasses

import pytest

from auditlog.errors import RecorderError, UnrecordableEventError
from auditlog.events import BatchStep, Provenance
from auditlog.recorder.gate import EventGate
from auditlog.synthetic import SyntheticEngine


class _SneakyId(str):
    """Equal to an open request's id, but not a ``str``: never the id that was checked."""


def _open_step() -> tuple[EventGate, BatchStep]:
    engine = SyntheticEngine(seed=5)
    gate = EventGate()
    for _ in range(3):
        gate.admit(engine.start(4))
    step = engine.step()
    assert step is not None
    return gate, step


def test_steps_of_open_requests_are_admitted_unchanged() -> None:
    gate, step = _open_step()
    assert gate.admit(step) is step


def test_an_equal_str_subclass_id_is_refused() -> None:
    gate, step = _open_step()
    ids = tuple(_SneakyId(rid) for rid in step.request_ids)
    with pytest.raises(UnrecordableEventError, match="request id must be a string"):
        gate.admit(dataclasses.replace(step, request_ids=ids))


def test_an_unknown_id_is_still_checked_as_an_id_first() -> None:
    gate, step = _open_step()
    bad = "evil\x00id"  # never started, and not a recordable id (NUL)
    forged = dataclasses.replace(
        step,
        token_ids=(*step.token_ids, 7),
        request_ids=(*step.request_ids, bad),
        provenance=(*step.provenance, Provenance.TARGET),
    )
    with pytest.raises(UnrecordableEventError, match="control character"):
        gate.admit(forged)


def test_a_valid_unknown_id_is_refused_as_never_started() -> None:
    gate, step = _open_step()
    forged = dataclasses.replace(
        step,
        token_ids=(*step.token_ids, 7),
        request_ids=(*step.request_ids, "never-started"),
        provenance=(*step.provenance, Provenance.TARGET),
    )
    with pytest.raises(RecorderError, match="never started"):
        gate.admit(forged)
