"""Start-up time of the ``auditlog`` command, against ``python -c pass`` measured in the same run.

Run ``python bench/cli_start.py [--repeat N]`` (or ``auditlog bench cli_start``). Each command is a
fresh process; the commands run round-robin, so a busy machine slows all of them alike. Figures:
the best and the median wall time of each command, the median as a multiple of the
interpreter's own start-up, and the median CPU time (user + system, which a busy machine inflates
less than wall time). Targets: ``auditlog --help`` under 0.25 s, ``auditlog verify`` of the
demo database under 0.5 s.

The database is the demo's (``auditlog demo``, 24 requests, when the engine extra is installed),
else a synthetic one of about the same size (said in the output).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS_S = {"auditlog --help": 0.25, "auditlog verify (demo database)": 0.5}


def _demo_database(work: Path, env: dict[str, str]) -> tuple[str, str]:
    """Make the demo database in ``work``; returns how it was made and the log's verifier key
    (verify is timed as the demo tells to run it: with the key, so that it exits 0)."""
    from auditlog.ledger import Signer

    try:
        import torch  # noqa: F401
    except ImportError:
        return _synthetic_database(work)
    subprocess.run(
        [sys.executable, "-m", "auditlog", "demo", "--show", "0", "--state-dir", str(work)],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )
    key = Signer.from_key_string((work / "auditlog-demo.key").read_text().strip())
    return "auditlog demo (24 requests)", key.verifier_key


def _synthetic_database(work: Path) -> tuple[str, str]:
    from auditlog.ledger import DirectoryWitness, Signer
    from auditlog.recorder import AuditRecorder
    from auditlog.synthetic import SyntheticEngine

    signer = Signer.generate("bench.example/cli")
    with AuditRecorder.open(
        f"sqlite:///{work / 'auditlog.db'}",
        origin="bench.example/cli",
        signers=[signer],
        witnesses=[DirectoryWitness(work / "witness")],
        spool_path=work / "spool",
    ) as recorder:
        for event in SyntheticEngine(seed=1).run(24):
            recorder.record(event)
    return "synthetic (24 requests; the engine extra is not installed)", signer.verifier_key


def _time(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs of each command")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    auditlog = [sys.executable, "-m", "auditlog"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        made, key = _demo_database(work, env)
        commands = {
            "python -c pass (baseline)": [sys.executable, "-c", "pass"],
            "auditlog --help": [*auditlog, "--help"],
            "auditlog --version": [*auditlog, "--version"],
            "auditlog verify (demo database)": [
                *auditlog, "verify", "--db", "auditlog.db", "--witness-dir", "witness",
                "--key", key,
            ],
        }  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, argv in commands.items():
                wall, cpu = _time(argv, work, env)
                times[name].append(wall)
                cpus[name].append(cpu)
    baseline = statistics.median(times["python -c pass (baseline)"])
    print(f"database: {made}; {args.repeat} runs each, round-robin; cpus: {os.cpu_count()}, "
          f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    print(
        f"{'command':34} {'best s':>7} {'median s':>9} {'x baseline':>11} {'cpu s':>6}  target "
        "(best wall)"
    )
    for name, runs in times.items():
        best, median = min(runs), statistics.median(runs)
        cpu = statistics.median(cpus[name])
        target = TARGETS_S.get(name)
        verdict = "" if target is None else f"< {target} s: {'met' if best < target else 'MISSED'}"
        print(
            f"{name:34} {best:7.3f} {median:9.3f} {median / baseline:11.1f} {cpu:6.3f}  {verdict}"
        )


if __name__ == "__main__":
    main()
