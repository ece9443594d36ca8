"""Load test of ``auditlog serve`` from a second process on loopback: fail-closed vs recording off.

Run ``python bench/server.py [--levels 1,8,32] [--requests 2] [--max-tokens 32]``. For each mode the
script starts the server in a child process (demo models when bundled, else a tiny random pair),
then drives streaming ``/v1/completions`` requests at each concurrency level (every stream runs
``--requests`` requests back to back, ``ignore_eos`` so each yields ``--max-tokens`` tokens) and
reports tokens/s and p50/p95/p99 of time to first token (TTFT) and inter-token latency (ITL: the
gap between consecutive streamed chunks, what a reader sees; a chunk may carry several tokens).
Bounded in count and in time (``--time-limit`` per level). "Recording off" is a server setting
for this baseline only, never reachable over HTTP (C23). Modes: ``off``, ``fail-closed``,
``fail-open``, and either with ``/process`` for the process recorder (``--recorder process``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

KEY = "sk-bench-0"
MODEL = "auditlog-demo"
TARGET_P95_S = 1.5


@dataclass
class LevelResult:
    mode: str
    concurrency: int
    tokens: int = 0
    seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    errors: int = 0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the server child -------------------------------------------------------------------------


def serve_child(mode: str, port_file: Path, tmp: Path) -> None:
    import uvicorn

    from auditlog.engine import LLMEngine
    from auditlog.engine.llm_engine import DEMO_MODELS_DIR
    from auditlog.ledger import Signer
    from auditlog.recorder import FailMode
    from auditlog.recorder.kinds import RecorderKind
    from auditlog.server import ApiKeyTable, ServerSettings, create_app

    if (DEMO_MODELS_DIR / "target" / "config.json").exists():
        factory = lambda sink: LLMEngine.demo(event_sink=sink)  # noqa: E731
    else:
        target, draft = _tiny_pair(tmp)
        factory = lambda sink: LLMEngine.from_pretrained(target, draft, event_sink=sink)  # noqa: E731
    origin = "bench.server.invalid/engine-0"
    settings = ServerSettings(
        db_url=f"sqlite:///{tmp / 'audit.db'}",
        origin=origin,
        signers=[Signer.generate(origin)],
        api_keys=ApiKeyTable.from_plain_keys({KEY: ("bench", "bench@bench")}),
        spool_path=tmp / "audit.spool",
        fail_mode=FailMode.OPEN if mode.startswith("fail-open") else FailMode.CLOSED,
        engine_factory=factory,
        recording=mode != "off",
        recorder_kind=RecorderKind.PROCESS if mode.endswith("/process") else RecorderKind.THREAD,
    )
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        port_file.write_text(str(server.servers[0].sockets[0].getsockname()[1]))
        await task

    asyncio.run(run())


def _tiny_pair(directory: Path) -> tuple[Path, Path]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from auditlog.engine.tokenizer import ByteTokenizer

    paths = []
    for name, layers, seed in (("target", 4, 0), ("draft", 1, 1)):
        torch.manual_seed(seed)
        cfg = LlamaConfig(
            vocab_size=259, hidden_size=128, intermediate_size=256, num_hidden_layers=layers,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
            bos_token_id=256, eos_token_id=257, pad_token_id=258,
        )  # fmt: skip
        LlamaForCausalLM(cfg).save_pretrained(directory / name)
        ByteTokenizer.byte_level().save(directory / name / "tokenizer.json")
        paths.append(directory / name)
    return paths[0], paths[1]


# -- the load generator -----------------------------------------------------------------------


async def _one(client: httpx.AsyncClient, result: LevelResult, max_tokens: int, i: int) -> None:
    body = {
        "model": MODEL, "prompt": f"Customer: my order {i} has not arrived\nAgent:",
        "max_tokens": max_tokens, "temperature": 0.8, "seed": i, "stream": True,
        "ignore_eos": True, "stream_options": {"include_usage": True},
    }  # fmt: skip
    t0 = time.perf_counter()
    last = None
    async with client.stream("POST", "/v1/completions", json=body) as r:
        if r.status_code != 200:
            result.errors += 1
            return
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                result.tokens += event["usage"]["completion_tokens"]
            if not event.get("choices"):
                continue
            now = time.perf_counter()
            if last is None:
                result.ttft.append(now - t0)
            else:
                result.itl.append(now - last)
            last = now


async def run_level(
    base_url: str, mode: str, concurrency: int, per_stream: int, max_tokens: int, limit_s: float
) -> LevelResult:
    result = LevelResult(mode=mode, concurrency=concurrency)
    deadline = time.perf_counter() + limit_s
    limits = httpx.Limits(max_connections=concurrency + 4)
    headers = {"authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=120
    ) as client:

        async def stream(worker: int) -> None:
            for j in range(per_stream):
                if time.perf_counter() > deadline:
                    return
                await _one(client, result, max_tokens, worker * 1000 + j)

        t0 = time.perf_counter()
        await asyncio.gather(*(stream(w) for w in range(concurrency)))
        result.seconds = time.perf_counter() - t0
    return result


def _start_server(mode: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp / "port"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--tmp", str(tmp)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    deadline = time.monotonic() + 180
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"server ({mode}) did not start")
        time.sleep(0.1)
    time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port_file.read_text()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--requests", type=int, default=6, help="requests per stream")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per level")
    parser.add_argument("--modes", default="off,fail-closed")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_child(args.serve, Path(args.tmp) / "port", Path(args.tmp))
        return
    levels = [int(x) for x in args.levels.split(",")]
    results: list[LevelResult] = []
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            proc, url = _start_server(mode, Path(tmp))
            try:
                asyncio.run(run_level(url, mode, 1, 1, 4, 30))  # warm-up
                for c in levels:
                    results.append(
                        asyncio.run(
                            run_level(url, mode, c, args.requests, args.max_tokens, args.time_limit)
                        )
                    )
                    r = results[-1]
                    print(f"{mode:20s} c={c:3d} done in {r.seconds:.1f}s", file=sys.stderr)
            finally:
                proc.terminate()
                proc.wait(60)
    print(f"{'mode':20s} {'conc':>4s} {'tok/s':>8s} {'ttft p50':>9s} {'p95':>7s} {'p99':>7s}"
          f" {'itl p50':>8s} {'p95':>7s} {'p99':>7s} {'err':>4s}")  # fmt: skip
    for r in results:
        print(
            f"{r.mode:20s} {r.concurrency:4d} {r.tokens / max(r.seconds, 1e-9):8.1f}"
            f" {_pct(r.ttft, 0.5) * 1e3:8.0f}ms {_pct(r.ttft, 0.95) * 1e3:5.0f}ms"
            f" {_pct(r.ttft, 0.99) * 1e3:5.0f}ms {_pct(r.itl, 0.5) * 1e3:6.1f}ms"
            f" {_pct(r.itl, 0.95) * 1e3:5.1f}ms {_pct(r.itl, 0.99) * 1e3:5.1f}ms {r.errors:4d}"
        )
    top = max(levels)
    for r in results:
        if r.concurrency == top:
            p95 = _pct(r.ttft, 0.95)
            verdict = "meets" if p95 < TARGET_P95_S else "misses"
            print(f"{r.mode}: p95 TTFT at {top} streams = {p95:.2f} s, {verdict} "
                  f"the {TARGET_P95_S} s target")  # fmt: skip


if __name__ == "__main__":
    main()
