"""The vLLM plugin's rules that need no vLLM: version pin, provenance from acceptance counts, the
entry point's opt-in. (The plugin against real vLLM: tests/vllm.)"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from auditlog.errors import ConfigurationError, EngineError
from auditlog.events import Provenance
from auditlog.integrations.vllm.acceptance import StepAcceptance, step_provenance
from auditlog.integrations.vllm.plugin import check_version

D, R, B, T = (Provenance.DRAFT_ACCEPTED, Provenance.TARGET_RECOVERED, Provenance.BONUS,
              Provenance.TARGET)  # fmt: skip


@pytest.mark.parametrize("version", ["0.32.0", "0.32.7", "0.32.1.post1"])
def test_supported_versions_pass(version: str) -> None:
    check_version(version)


@pytest.mark.parametrize("version", ["0.31.9", "0.33.0", "1.0.0", "0.32.0rc1"])
def test_unknown_versions_fail_loudly(version: str) -> None:
    with pytest.raises(ConfigurationError, match="supports vLLM"):
        check_version(version)


def test_provenance_from_acceptance_counts() -> None:
    """C6: accepted drafts, then recovered (a rejection) or bonus (all accepted)."""
    assert step_provenance(1, None) == [T]
    assert step_provenance(3, StepAcceptance(2, 2)) == [D, D, B]
    assert step_provenance(2, StepAcceptance(1, 3)) == [D, R]
    assert step_provenance(1, StepAcceptance(0, 3)) == [R]
    # a step cut by max_tokens or a stop keeps a prefix with exact labels
    assert step_provenance(1, StepAcceptance(2, 2)) == [D]
    assert step_provenance(2, StepAcceptance(2, 3)) == [D, D]


@pytest.mark.parametrize(
    ("n", "acceptance"),
    [(2, None), (4, StepAcceptance(2, 3)), (1, StepAcceptance(3, 2)), (1, StepAcceptance(-1, 2))],
)
def test_counts_that_do_not_fit_are_refused(n: int, acceptance: StepAcceptance | None) -> None:
    """The attacker (or a changed vLLM) cannot get tokens labelled by guesswork."""
    with pytest.raises(EngineError):
        step_provenance(n, acceptance)


@dataclass
class _Metrics:  # the fields of vLLM's RequestSpecDecodeMetrics that the plugin reads
    histogram: list[int]
    per_step_accepted: list[int] = field(default_factory=list)
    per_step_drafted: list[int] = field(default_factory=list)


@dataclass
class _Output:
    request_id: str
    spec_decode_metrics: _Metrics | None


def test_acceptance_of_one_step_and_final_outputs() -> None:
    assert StepAcceptance.of(_Output("r", None), 0) is None
    one_step = _Metrics([], [1], [2])  # attached by the scheduler hook
    assert StepAcceptance.of(_Output("r", one_step), 5) == StepAcceptance(1, 2)
    final = _Metrics([0, 1, 1], [1, 2], [2, 2])  # vLLM's cumulative object on the last output
    assert StepAcceptance.of(_Output("r", final), 1) == StepAcceptance(2, 2)
    assert StepAcceptance.of(_Output("r", final), 2) is None  # no verification in this step
    with pytest.raises(EngineError, match="verification steps"):
        StepAcceptance.of(_Output("r", final), 0)  # a step went unseen: refuse, do not guess


def test_entry_point_is_opt_in() -> None:
    """Without AUDITLOG_VLLM=1 the plugin neither imports vLLM nor patches anything."""
    env = {k: v for k, v in os.environ.items() if k != "AUDITLOG_VLLM"}
    code = (
        "import sys; from auditlog.integrations.vllm import register; register(); "
        "assert 'vllm' not in sys.modules, 'vllm imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
