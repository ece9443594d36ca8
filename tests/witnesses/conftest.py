"""Fixtures: real aics-witness processes on 127.0.0.1 (see witness_env.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from witness_env import RunningWitness, StartWitnesses, start_witness


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[StartWitnesses]:
    """``witnesses(n, {origin: log verifier key})`` starts n witnesses; all stop at teardown."""
    started: list[RunningWitness] = []

    def start(n: int, logs: dict[str, str]) -> list[RunningWitness]:
        batch = [
            start_witness(
                tmp_path / f"w{len(started) + i}", f"witness.test/w{len(started) + i}", logs
            )
            for i in range(n)
        ]
        started.extend(batch)
        return batch

    yield start
    for witness in started:
        witness.stop()
