"""The engine-overhead benchmark runs and measures what docs/PERFORMANCE.md reports from it.

``python bench/recorder.py --kinds --engine`` (section "Engine overhead, measured inside each
run"): for every mode, the share of the engine thread's time spent inside ``record()`` and the
share in which it did not run. A smoke run at the smallest size: the numbers are not judged,
only that they are measured (zero with recording off, above zero with a recorder) and bounded.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "recorder.py"
MODES = ("off", "off/busy", "open/thread", "open/process", "closed/thread", "closed/process")
SHARES = re.compile(r"inside record\(\) ([\d.]+) % and not running (-?[\d.]+) %")


def test_engine_bench_measures_the_time_inside_record_per_mode(tmp_path: Path) -> None:
    args = ["--records", "200", "--repeat", "1", "--kinds", "--engine", "--no-pg"]
    args += ["--engine-batch", "2", "--engine-tokens", "4"]
    done = subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = {m: [ln for ln in done.stdout.splitlines() if f"recorder {m} " in ln] for m in MODES}
    for mode, found in lines.items():
        assert len(found) == 1, (mode, done.stdout)
        shares = SHARES.search(found[0])
        assert shares is not None, found[0]
        inside, not_running = (float(x) for x in shares.groups())
        assert 0 <= inside < 100 and not_running < 100, found[0]
        if mode.startswith("off"):
            assert inside == 0.0, found[0]  # no recorder: nothing to time
        else:
            assert inside > 0.0, found[0]  # every event went through the timed record()
    assert "added latency per token" in done.stdout
