"""Recorder benchmark, ``--engine`` part: the reference engine's decode rate with the recorder
off, fail-open and fail-closed, with the thread and the process recorder, interleaved, and the
fail-closed release latency (run through ``python bench/recorder.py --engine``).

Tokens/s of separate runs are too noisy on a shared machine to show a 1 % overhead, so each run
also measures, on the engine's thread and against that run's own wall time, the share spent
inside ``record()`` and the share in which the thread did not run (GIL waits, preemption; its
floor is the recording-off run). ``off/busy`` is the control: recording off beside a process
that keeps the other core busy (docs/PERFORMANCE.md, "Engine overhead, measured inside each run").
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from auditlog.events import Event
from auditlog.ledger import Signer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recorder import FLUSH_MS, ORIGIN, open_recorder  # bench/recorder.py

# Engine runs, interleaved: recording off, off beside a busy process (the control: what any work
# on the other core costs the engine), then each fail mode with each recorder kind.
ENGINE_MODES = (
    "off", "off/busy", "open/thread", "open/process", "closed/thread", "closed/process"
)  # fmt: skip

# The control's neighbour: one process hashing without pause until it is killed.
_BUSY = "import hashlib\nb = bytes(4096)\nwhile True:\n    hashlib.sha256(b).digest()\n"


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
    runs: dict[str, list[EngineRun]] = {mode: [] for mode in ENGINE_MODES}
    engine_run(tmp, "off", -1, batch, max_tokens)  # warm-up (first model load, allocator)
    for i in range(repeat):
        for mode in ENGINE_MODES:  # interleaved, so machine noise hits every mode alike
            runs[mode].append(engine_run(tmp, mode, i, batch, max_tokens))

    def median(mode: str, measure: str) -> float:
        return float(statistics.median(getattr(r, measure) for r in runs[mode]))

    base = median("off", "rate")
    print(
        f"engine     batch {batch}, {max_tokens} tokens each, demo pair, speculative k=4, "
        f"flush interval {FLUSH_MS} ms, median of {repeat}, load {os.getloadavg()[0]:.2f}"
    )
    for mode in ENGINE_MODES:
        rate = median(mode, "rate")
        extra = median(mode, "cpu_per_token") / median("off", "cpu_per_token") - 1
        thread = median(mode, "thread_cpu_per_token") / median("off", "thread_cpu_per_token") - 1
        each = ", ".join(f"{100 * (1 - r.rate / base):.1f}" for r in runs[mode])
        print(
            f"  recorder {mode:14s} {rate:8.1f} tokens/s   "
            f"overhead {100 * (1 - rate / base):5.1f} % "
            f"(runs {each})   engine-process CPU per token {100 * extra:+5.1f} %   "
            f"engine-thread CPU per token {100 * thread:+5.1f} %   "
            f"inside record() {100 * median(mode, 'in_record'):.3f} % and not running "
            f"{100 * median(mode, 'off_cpu'):.2f} % of the engine thread's time"
        )
    for mode in ("closed/thread", "closed/process"):
        lat = sorted(w for r in runs[mode] for w in r.latencies)
        p50 = lat[len(lat) // 2] * 1e3
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
        bound = FLUSH_MS + 2
        print(
            f"  {mode:14s} added latency per token (generated -> released): p50 {p50:.2f} ms, "
            f"p99 {p99:.2f} ms (goal p99 <= group commit + 2 ms = {bound:g} ms: "
            f"{'met' if p99 <= bound else 'missed'})"
        )


class _TimedSink:
    """The recorder's ``record`` as the engine calls it, timed on the engine's thread: the part
    of the engine overhead measured directly, free of the noise between runs (both sides of the
    ratio come from the same run)."""

    def __init__(self, record: Callable[[Event], None]) -> None:
        self.record, self.seconds = record, 0.0

    def __call__(self, event: Event) -> None:
        t = time.perf_counter()
        self.record(event)
        self.seconds += time.perf_counter() - t


@dataclass
class EngineRun:
    """What one engine run measured."""

    rate: float  # tokens/s, to the last release
    cpu_per_token: float  # the engine's process, seconds
    thread_cpu_per_token: float  # the engine's thread alone, seconds
    in_record: float  # share of the engine thread's wall time spent inside record()
    off_cpu: float  # share of the engine thread's wall time it did not run (GIL, preemption)
    latencies: list[float]  # fail-closed: release time minus generation time, per token


def engine_run(tmp: Path, mode: str, i: int, batch: int, max_tokens: int) -> EngineRun:
    """One engine run: rate, CPU per token, time inside ``record()``, release latencies."""
    import queue as queue_mod
    import threading

    from auditlog.engine import LLMEngine, SamplingParams
    from auditlog.engine.corpus import prompts as corpus_prompts

    fail_mode, _, kind = mode.partition("/")
    recorder, busy = None, None
    if kind == "busy":
        busy = subprocess.Popen([sys.executable, "-c", _BUSY])
    elif kind:
        name = mode.replace("/", "-")
        recorder = open_recorder(
            kind,
            f"sqlite:///{tmp / f'engine-{name}-{batch}-{i}.db'}",
            origin=ORIGIN,
            signers=[Signer.generate(ORIGIN)],
            spool_path=tmp / f"spool-engine-{name}-{batch}-{i}",
            flush_interval_ms=FLUSH_MS,
        )
    sink = _TimedSink(recorder.record) if recorder else None
    engine = LLMEngine.demo(event_sink=sink) if sink else LLMEngine.demo()
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
    t, cpu, thread_cpu = time.perf_counter(), time.process_time(), time.thread_time()
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
    engine_wall, thread_cpu = time.perf_counter() - t, time.thread_time() - thread_cpu
    if busy is not None:
        busy.kill()
        busy.wait()
    if closed:
        pending.put(None)
        thread.join()
    elapsed = time.perf_counter() - t
    cpu_per_token = (time.process_time() - cpu) / tokens
    if recorder is not None:
        recorder.close()
    in_record = sink.seconds / engine_wall if sink else 0.0
    off_cpu = 1 - thread_cpu / engine_wall
    rate = tokens / elapsed
    return EngineRun(rate, cpu_per_token, thread_cpu / tokens, in_record, off_cpu, latencies)
