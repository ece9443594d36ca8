"""Checks shared by the vLLM tests: trails against what the client got, provenance against vLLM's
own per-step acceptance, step manifests against tokens records, and ``auditlog verify``."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from auditlog.events import Provenance
from auditlog.store import create_db_engine, get_log_id, iter_records
from auditlog.trails import Trail, read_trail


def trails_by_external_id(db_url: str, origin: str) -> dict[str, Trail]:
    engine = create_db_engine(db_url, read_only=True)
    try:
        with engine.connect() as conn:
            log_id = get_log_id(conn, origin)
            ids = [r.request_id for r in iter_records(conn, log_id) if r.kind == "request.start"]
            found = {}
            for request_id in ids:
                assert request_id is not None
                t = read_trail(conn, origin, request_id)
                found[t.start["params"]["external_request_id"]] = t
            return found
    finally:
        engine.dispose()


def step_groups(t: Trail) -> list[list[Provenance]]:
    """The trail's provenance split by physical step, in order."""
    groups: list[list[Provenance]] = []
    last = None
    for step, prov in zip(t.steps, t.provenance, strict=True):
        if step != last:
            groups.append([])
            last = step
        groups[-1].append(prov)
    return groups


def expected_groups(accepted: list[int], drafted: list[int], sizes: list[int]) -> list[list[str]]:
    """Per-step provenance that vLLM's own acceptance counts imply (C6), cut to the step sizes."""
    out = [["target"]]
    for a, d, size in zip(accepted, drafted, sizes[1:], strict=False):
        full = ["draft_accepted"] * a + ["bonus" if a == d else "target_recovered"]
        out.append(full[:size])
    return out


def check_spec_provenance(t: Trail, accepted: list[int], drafted: list[int]) -> None:
    groups = step_groups(t)
    sizes = [len(g) for g in groups]
    # every step but the last is complete; the last may be cut by max_tokens or a stop
    assert len(groups) - 1 in (len(accepted), len(accepted) - 1), (len(groups), len(accepted))
    assert [[str(p) for p in g] for g in groups] == expected_groups(accepted, drafted, sizes)


def check_step_manifests(db_url: str, origin: str) -> int:
    """Every step manifest equals the tokens records of its step; returns the number of steps
    that carried tokens of more than one request (C11)."""
    engine = create_db_engine(db_url, read_only=True)
    import orjson

    tokens: dict[int, dict[str, int]] = defaultdict(dict)
    manifests: dict[int, dict[str, int]] = {}
    try:
        with engine.connect() as conn:
            for r in iter_records(conn, get_log_id(conn, origin)):
                header = orjson.loads(r.body)
                if r.kind == "tokens":
                    assert r.request_id not in tokens[header["step"]]
                    tokens[header["step"]][str(r.request_id)] = header["n"]
                elif r.kind == "step":
                    manifests[header["step"]] = {rid: n for rid, n in header["batch"]}
    finally:
        engine.dispose()
    assert manifests.keys() == tokens.keys()
    for step, batch in manifests.items():
        assert batch == tokens[step], step
    return sum(len(b) > 1 for b in manifests.values())


def auditlog_verify(db_url: str, verifier_key: str, witness: Path | None, *more_keys: str) -> None:
    cmd = [sys.executable, "-m", "auditlog", "verify", "--db", db_url, "--key", verifier_key]
    for key in more_keys:
        cmd += ["--key", key]
    if witness is not None:
        cmd += ["--witness-dir", str(witness)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def outputs_of(stdout: str, key: str = "outputs") -> list[dict[str, Any]]:
    import json

    result: list[dict[str, Any]] = json.loads(stdout.strip().splitlines()[-1])[key]
    return result
