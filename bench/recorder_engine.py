"""Recorder benchmark, ``--engine`` part: the reference engine's decode rate with the recorder
off, fail-open and fail-closed, with the thread and the process recorder, interleaved, and the
fail-closed release latency (run through ``python bench/recorder.py --engine``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from auditlog.ledger import Signer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recorder import FLUSH_MS, ORIGIN, open_recorder  # bench/recorder.py

# Engine runs, interleaved: recording off, then each fail mode with each recorder kind.
ENGINE_MODES = ("off", "open/thread", "open/process", "closed/thread", "closed/process")


def bench_engine_overhead(tmp: Path, batch: int, max_tokens: int, repeat: int) -> None:
    """Decode tokens/s of the reference engine with the recorder off, fail-open and fail-closed,
    with the thread recorder and with the process recorder.

    Fail-open: the engine loop calls ``record()`` and releases tokens at once. Fail-closed: as in
    ``auditlog serve``, the engine loop never waits; a releaser thread hands each step's tokens
    out only after ``wait_durable`` says they are durable. Throughput counts until the last token
    is released; the added latency is release time minus generation time, per token.
    """
    import torch

    torch.set_num_threads(1)
    rates: dict[str, list[float]] = {mode: [] for mode in ENGINE_MODES}
    cpus: dict[str, list[float]] = {mode: [] for mode in ENGINE_MODES}
    waits: dict[str, list[float]] = {mode: [] for mode in ENGINE_MODES}
    engine_run(tmp, "off", -1, batch, max_tokens)  # warm-up (first model load, allocator)
    for i in range(repeat):
        for mode in ENGINE_MODES:  # interleaved, so machine noise hits every mode alike
            rate, cpu, w = engine_run(tmp, mode, i, batch, max_tokens)
            rates[mode].append(rate)
            cpus[mode].append(cpu)
            waits[mode].extend(w)
    base = statistics.median(rates["off"])
    print(
        f"engine     batch {batch}, {max_tokens} tokens each, demo pair, speculative k=4, "
        f"flush interval {FLUSH_MS} ms, median of {repeat}, load {os.getloadavg()[0]:.2f}"
    )
    for mode in ENGINE_MODES:
        r = statistics.median(rates[mode])
        extra = statistics.median(cpus[mode]) / statistics.median(cpus["off"]) - 1
        runs = ", ".join(f"{100 * (1 - x / base):.1f}" for x in rates[mode])
        print(
            f"  recorder {mode:14s} {r:8.1f} tokens/s   overhead {100 * (1 - r / base):5.1f} % "
            f"(runs {runs})   engine-process CPU per token {100 * extra:+5.1f} %"
        )
    for mode in ("closed/thread", "closed/process"):
        lat = sorted(waits[mode])
        p50 = lat[len(lat) // 2] * 1e3
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
        bound = FLUSH_MS + 2
        print(
            f"  {mode:14s} added latency per token (generated -> released): p50 {p50:.2f} ms, "
            f"p99 {p99:.2f} ms (goal p99 <= group commit + 2 ms = {bound:g} ms: "
            f"{'met' if p99 <= bound else 'missed'})"
        )


def engine_run(
    tmp: Path, mode: str, i: int, batch: int, max_tokens: int
) -> tuple[float, float, list[float]]:
    """One engine run: tokens/s, process CPU per token, per-token release latencies."""
    import queue as queue_mod
    import threading

    from auditlog.engine import LLMEngine, SamplingParams
    from auditlog.engine.corpus import prompts as corpus_prompts

    fail_mode, _, kind = mode.partition("/")
    recorder = None
    if kind:
        name = mode.replace("/", "-")
        recorder = open_recorder(
            kind,
            f"sqlite:///{tmp / f'engine-{name}-{batch}-{i}.db'}",
            origin=ORIGIN,
            signers=[Signer.generate(ORIGIN)],
            spool_path=tmp / f"spool-engine-{name}-{batch}-{i}",
            flush_interval_ms=FLUSH_MS,
        )
    engine = LLMEngine.demo(event_sink=recorder.record) if recorder else LLMEngine.demo()
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
    for j, prompt in enumerate(corpus_prompts(num_prompts=batch, seed=3)):
        engine.add_request(f"r{i}-{j}", prompt, params, tenant="bench", principal="bench")
    generated: dict[str, int] = {}
    latencies: list[float] = []
    pending: queue_mod.Queue[tuple[float, list[tuple[str, int, int]]] | None] = queue_mod.Queue()

    def releaser() -> None:  # the server's release point, off the engine thread
        assert recorder is not None
        while (item := pending.get()) is not None:
            t_gen, outs = item
            for request_id, total, _ in outs:
                recorder.wait_durable(request_id, total)
            now = time.perf_counter()
            latencies.extend([now - t_gen] * sum(n for _, _, n in outs))

    closed = fail_mode == "closed"
    thread = threading.Thread(target=releaser)
    if closed:
        thread.start()
    tokens = 0
    t, cpu = time.perf_counter(), time.process_time()
    while engine.has_unfinished():
        outs = []
        for out in engine.step():
            n = len(out.new_token_ids)
            if n:
                generated[out.request_id] = generated.get(out.request_id, 0) + n
                outs.append((out.request_id, generated[out.request_id], n))
                tokens += n
        if closed and outs:
            pending.put((time.perf_counter(), outs))
    if closed:
        pending.put(None)
        thread.join()
    elapsed = time.perf_counter() - t
    cpu_per_token = (time.process_time() - cpu) / tokens
    if recorder is not None:
        recorder.close()
    return tokens / elapsed, cpu_per_token, latencies
