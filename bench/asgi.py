"""ASGI middleware benchmark: strict parsing and the audited round trip, as ratios.

Run: ``python bench/asgi.py [--requests N]`` from a checkout (tests/integrations on the path for
the echo app).

1. Parsing (CPU time of this process): ``asgi_request.loads_strict`` on a ~450 KiB chat body and
   ``loads_answer`` on one streamed chunk, each against stdlib ``json.loads`` on the same bytes in
   the same run (what the app itself pays).
2. Round trip: ``--requests`` streamed completions (10 events each) through uvicorn on
   127.0.0.1, to the echo app bare and to ``AuditMiddleware(echo app)`` recording to SQLite,
   fail-closed and fail-open, same run, same client; the ratio is audited / bare wall time. The
   echo app answers at once, so the ratio is the whole audit cost per request (fail-closed: a
   durable commit before each event and before the end), not a slowdown of a real model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import timeit
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integrations"))

from echo_app import echo_app  # from the test helpers, on the path above
from integration_fixtures import audited_app, serve

from auditlog.integrations.asgi_request import loads_answer, loads_strict
from auditlog.recorder import FailMode
from auditlog.store import upgrade

CHUNK = json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 1732700000,
                    "model": "m", "choices": [{"index": 0, "delta": {"content": "hello"},
                                               "finish_reason": None}]}).encode()  # fmt: skip
MESSAGES = [{"role": "user", "content": "x" * 200}] * 2000
BODY = json.dumps(
    {"model": "m", "temperature": 0.7, "max_tokens": 64, "messages": MESSAGES}
).encode()


def _per_call(fn: object, raw: bytes, number: int) -> float:
    return min(timeit.repeat(lambda: fn(raw), number=number, repeat=5)) / number  # type: ignore[operator]


def bench_parsing() -> None:
    for name, ours, raw, number in (
        ("request body (loads_strict)", loads_strict, BODY, 20),
        ("streamed chunk (loads_answer)", loads_answer, CHUNK, 20_000),
    ):
        mine, base = _per_call(ours, raw, number), _per_call(json.loads, raw, number)
        print(f"{name}: {mine * 1e6:.1f} us, json.loads {base * 1e6:.1f} us, "
              f"ratio {mine / base:.2f}")  # fmt: skip


def _round_trips(url: str, n: int, key: str | None) -> float:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {"model": "plain", "prompt": "p" * 40, "stream": True}
    start = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for _ in range(n):
            with client.stream("POST", f"{url}/v1/completions", json=body, headers=headers) as r:
                for _ in r.iter_raw():
                    pass
    return time.perf_counter() - start


def bench_round_trip(n: int) -> None:
    from auditlog.gateway.auth import ApiKeyTable

    with tempfile.TemporaryDirectory() as tmp:
        with serve(echo_app()) as url:
            bare = _round_trips(url, n, None)
        table = ApiKeyTable.from_plain_keys({"sk-bench": ("bench", "svc")})
        timings = {}
        for mode in (FailMode.CLOSED, FailMode.OPEN):
            where = Path(tmp) / mode.value
            where.mkdir()
            db_url = f"sqlite:///{where / 'bench.db'}"
            upgrade(db_url)
            with audited_app(echo_app(), where, f"bench.auditlog.invalid/asgi-{mode.value}",
                             db_url, identities=table, fail_mode=mode) as audited:  # fmt: skip
                timings[mode] = _round_trips(audited.url, n, "sk-bench")
    closed, fail_open = timings[FailMode.CLOSED], timings[FailMode.OPEN]
    print(f"round trip x{n}: bare {bare:.2f} s; audited fail-closed {closed:.2f} s "
          f"(ratio {closed / bare:.1f}), fail-open {fail_open:.2f} s "
          f"(ratio {fail_open / bare:.1f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    bench_parsing()
    bench_round_trip(args.requests)


if __name__ == "__main__":
    main()
