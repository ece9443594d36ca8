"""Reference engine benchmark: decode throughput and speculative decoding on the demo pair.

Run ``python bench/engine.py`` (``--help`` for options). Figures:

1. target-only greedy decode tokens/s at batch 1, 8 and 32 (prefill excluded);
2. speculative decoding, k = 4, greedy: mean tokens per target forward pass (budget: >= 2.5),
   and wall-clock tokens/s against target-only decoding of the same prompts, outputs asserted equal;
3. numerics: speculative decode tokens/s with the batch-invariant kernels (the default, needed for
   replay: docs/REPLAY.md) and with the library kernels, in float32 and bfloat16, each as a ratio
   to float32 with library kernels measured in the same run.

On a CPU with a tiny target the draft's k extra forward passes cost about as much as the target's
one, so the wall-clock gain can vanish even at high acceptance; it appears where the target pass
dominates (a GPU, or a target much larger than its draft).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from auditlog.engine import EngineConfig, LLMEngine, SamplingParams
from auditlog.engine.llm_engine import DEMO_MODELS_DIR
from auditlog.events import BatchStep, Event

FALLBACK_PROMPTS = (
    "Customer: Hello, my order has not arrived yet.\nAgent:",
    "Customer: I was charged twice this month.\nAgent:",
    "Customer: I cannot log in to my account.\nAgent:",
    "Customer: How do I return a pair of running shoes?\nAgent:",
)


def bench_prompts(n: int) -> list[str]:
    try:
        from auditlog.engine.corpus import prompts
    except ImportError:
        return [FALLBACK_PROMPTS[i % len(FALLBACK_PROMPTS)] for i in range(n)]
    return prompts(num_prompts=n, seed=7)


@dataclass
class Run:
    tokens: list[tuple[int, ...]]
    seconds: float
    decode_tokens: int
    decode_seconds: float
    decode_cpu_seconds: float  # CPU time of this process: robust to other load on the machine
    target_passes: int
    events: list[Event]


def run(engine: LLMEngine, events: list[Event], prompts: list[str], max_tokens: int) -> Run:
    """Add all prompts at once, step to completion; time the steps after every prefill is done."""
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
    for i, prompt in enumerate(prompts):
        engine.add_request(f"b{i}", prompt, params, tenant="bench", principal="bench")
    got: dict[str, list[int]] = {f"b{i}": [] for i in range(len(prompts))}
    start = time.perf_counter()
    decode_start, decode_tokens, decode_cpu_start = 0.0, 0, 0.0
    while engine.has_unfinished():
        prefilled = all(got.values())
        if prefilled and not decode_start:
            decode_start, decode_cpu_start = time.perf_counter(), time.process_time()
        for out in engine.step():
            got[out.request_id].extend(out.new_token_ids)
            if decode_start:
                decode_tokens += len(out.new_token_ids)
    end = time.perf_counter()
    return Run(
        tokens=[tuple(v) for v in got.values()],
        seconds=end - start,
        decode_tokens=decode_tokens,
        decode_seconds=end - decode_start if decode_start else 0.0,
        decode_cpu_seconds=time.process_time() - decode_cpu_start if decode_start else 0.0,
        target_passes=engine.num_target_passes,
        events=events,
    )


def tokens_per_verification(events: list[Event]) -> float:
    """Mean tokens a sequence receives per speculative target pass (accepted drafts + 1)."""
    received = verifications = 0
    for e in events:
        if isinstance(e, BatchStep):
            for rid in e.drafts:
                verifications += 1
                received += e.request_ids.count(rid)
    return received / verifications if verifications else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=Path, default=DEMO_MODELS_DIR / "target")
    parser.add_argument("--draft", type=Path, default=DEMO_MODELS_DIR / "draft")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--spec-batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--numerics-batches", type=int, nargs="*", default=[8, 32])
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    config = EngineConfig(num_kv_blocks=1024, max_num_seqs=64, num_speculative_tokens=args.k)

    def engine(
        spec: bool, dtype: torch.dtype = torch.float32, invariant: bool = True
    ) -> tuple[LLMEngine, list[Event]]:
        events: list[Event] = []
        eng = LLMEngine.from_pretrained(
            args.target,
            args.draft if spec else None,
            device=args.device,
            dtype=dtype,
            num_speculative_tokens=args.k,
            config=replace(config, batch_invariant=invariant),
            event_sink=events.append,
        )
        return eng, events

    def timed(
        spec: bool, prompts: list[str], dtype: torch.dtype = torch.float32, invariant: bool = True
    ) -> Run:
        warm, _ = engine(spec, dtype, invariant)
        run(warm, [], prompts[:1], 4)  # warm-up (allocator, kernels) on a throwaway engine
        eng, events = engine(spec, dtype, invariant)
        return run(eng, events, prompts, args.max_tokens)

    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()}")
    print(f"target={args.target} draft={args.draft} max_tokens={args.max_tokens}")
    print("\n== target-only greedy decode ==")
    for batch in args.batches:
        r = timed(False, bench_prompts(batch))
        steps = sum(isinstance(e, BatchStep) for e in r.events)
        print(
            f"batch {batch:3d}: {r.decode_tokens / r.decode_seconds:9.1f} decode tok/s  "
            f"({r.decode_tokens} tokens, {1e3 * r.seconds / steps:6.2f} ms/step over {steps} steps)"
        )
    print(f"\n== speculative, k={args.k}, greedy ==")
    for batch in args.spec_batches:
        prompts = bench_prompts(batch)
        base, spec = timed(False, prompts), timed(True, prompts)
        if base.tokens != spec.tokens:
            raise SystemExit("speculative output differs from target-only output")
        total = sum(len(t) for t in spec.tokens)
        per_pass = tokens_per_verification(spec.events)
        print(
            f"batch {batch:3d}: {per_pass:.2f} tokens per sequence per target pass "
            f"(speculative steps); target passes {spec.target_passes} vs {base.target_passes} "
            f"target-only, {total} tokens"
        )
        print(
            f"           wall clock: speculative {total / spec.seconds:8.1f} tok/s, target-only "
            f"{total / base.seconds:8.1f} tok/s, speed-up x{base.seconds / spec.seconds:.2f} "
            "(equal outputs)"
        )

    if args.numerics_batches:
        print(f"\n== numerics: speculative k={args.k}, greedy, decode tok/s (wall, CPU time) ==")
    for batch in args.numerics_batches:
        prompts = bench_prompts(batch)
        rates: dict[tuple[torch.dtype, bool], tuple[float, float]] = {}
        for dtype in (torch.float32, torch.bfloat16):
            for invariant in (False, True):
                r = timed(True, prompts, dtype, invariant)
                rates[dtype, invariant] = (
                    r.decode_tokens / r.decode_seconds,
                    r.decode_tokens / r.decode_cpu_seconds,
                )
        wall0, cpu0 = rates[torch.float32, False]
        for (dtype, invariant), (wall, cpu) in rates.items():
            kernels = "batch-invariant" if invariant else "library"
            print(
                f"batch {batch:3d}: {dtype!s:15s} {kernels:15s} wall {wall:8.1f} tok/s "
                f"x{wall / wall0:.2f}, CPU time {cpu:8.1f} tok/s x{cpu / cpu0:.2f} "
                "(ratios to float32 library kernels)"
            )


if __name__ == "__main__":
    main()
