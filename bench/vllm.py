"""vLLM throughput on CPU with auditing off, fail-open and fail-closed, measured in the same run.

Run ``python bench/vllm.py [--requests 16] [--tokens 64] [--rounds 2]`` in the vLLM environment
(``scripts/vllm_env.sh``). A tiny random Llama (hidden 128, 4 heads) is made in a temporary
directory; each mode runs in its own process (the plugin hooks vLLM's classes for the process's
lifetime), ``rounds`` times, interleaved. Each run drives ``LLMEngine`` step by step: ``requests``
prompts with ``max_tokens=tokens`` (``ignore_eos``), after one warm-up batch. Fail-closed releases
a step's outputs only once everything recorded so far is durable (``recorder.flush()`` after each
step, as the server's gate waits before each chunk); fail-open releases at once.

Reported, median over rounds, each with its ratio to "off" from this run: generated tokens per
second (wall clock), and process CPU milliseconds per generated token (all threads, the recorder's
writer included), which other load on a shared machine disturbs far less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This file is named vllm.py: its directory must not shadow the vllm package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
MODES = ("off", "fail-open", "fail-closed")


def worker(mode: str, target: str, tmp: str, num_requests: int, num_tokens: int) -> None:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams

    recorder = None
    if mode != "off":
        from auditlog.integrations.vllm import install
        from auditlog.ledger import Signer
        from auditlog.recorder import AuditRecorder, FailMode

        origin = f"bench.example/vllm-{mode}"
        recorder = AuditRecorder.open(
            f"sqlite:///{tmp}/{mode}.db", origin=origin, signers=[Signer.generate(origin)],
            spool_path=f"{tmp}/{mode}.spool",
            mode=FailMode.CLOSED if mode == "fail-closed" else FailMode.OPEN,
        )  # fmt: skip
        install(recorder=recorder)
    llm = LLM(model=target, dtype="float32", max_model_len=256, seed=0, enforce_eager=True)
    engine = llm.llm_engine
    params = SamplingParams(temperature=0.0, max_tokens=num_tokens, ignore_eos=True)

    def run(tag: str, n: int) -> tuple[int, float, float]:
        for i in range(n):
            engine.add_request(f"{tag}-{i}", f"prompt number {i} of the benchmark", params)
        generated, t0, c0 = 0, time.perf_counter(), time.process_time()
        while engine.has_unfinished_requests():
            outputs = engine.step()
            if recorder is not None and recorder.mode.value == "fail-closed":
                recorder.flush()
            generated += sum(len(o.outputs[0].token_ids) for o in outputs if o.finished)
        return generated, time.perf_counter() - t0, time.process_time() - c0

    run("warm", 2)
    generated, seconds, cpu = run("bench", num_requests)
    if recorder is not None:
        recorder.close()
    print(json.dumps({"mode": mode, "tokens": generated, "seconds": seconds, "cpu": cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.target, args.tmp, args.requests, args.tokens)
        return
    sys.path.insert(0, str(HERE.parent / "tests" / "vllm"))
    from vllm_models import make_model  # the tests' tiny model maker: one home

    rates: dict[str, list[float]] = {m: [] for m in MODES}
    cpu_ms: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        target = make_model(Path(tmp) / "target", layers=2, seed=0)
        for r in range(args.rounds):
            for mode in MODES:
                run_dir = Path(tmp) / f"{mode}-{r}"
                run_dir.mkdir()
                done = subprocess.run(
                    [sys.executable, __file__, "--worker", mode, "--target", str(target),
                     "--tmp", str(run_dir), "--requests", str(args.requests),
                     "--tokens", str(args.tokens)],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if done.returncode != 0:
                    raise SystemExit(done.stderr[-3000:])
                result = json.loads(done.stdout.strip().splitlines()[-1])
                rates[mode].append(result["tokens"] / result["seconds"])
                cpu_ms[mode].append(1000 * result["cpu"] / result["tokens"])
    base, base_cpu = statistics.median(rates["off"]), statistics.median(cpu_ms["off"])
    print(f"vLLM {args.requests} requests x {args.tokens} tokens, median of {args.rounds} rounds")
    for mode in MODES:
        rate, cpu = statistics.median(rates[mode]), statistics.median(cpu_ms[mode])
        print(f"  {mode:12s} {rate:8.1f} tokens/s (x{rate / base:.3f})   "
              f"{cpu:6.2f} CPU ms/token (x{cpu / base_cpu:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
