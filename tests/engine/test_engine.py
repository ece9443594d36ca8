"""LLMEngine end to end on tiny random-weight models (float64, so that no argmax near-tie can
flip between batch shapes): batching invariance, speculative = target-only, preemption, events."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine_fixtures import save_tiny_model  # noqa: E402

from auditlog.engine import EngineConfig, LLMEngine, SamplingParams, load_model  # noqa: E402
from auditlog.engine.tokenizer import ByteTokenizer  # noqa: E402
from auditlog.errors import InvalidRequestError  # noqa: E402
from auditlog.events import (  # noqa: E402
    BatchStep,
    Event,
    FinishReason,
    Provenance,
    RequestFinished,
    RequestStarted,
)

pytestmark = pytest.mark.engine

GREEDY = SamplingParams(max_tokens=12, ignore_eos=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("models")
    save_tiny_model(root / "target", "llama", seed=3)
    save_tiny_model(root / "close", "llama", seed=3, noise=0.002)  # agrees with target often
    save_tiny_model(root / "far", "qwen2", seed=4, num_hidden_layers=1)  # mostly rejected
    load = {n: load_model(root / n, dtype=torch.float64) for n in ("target", "close", "far")}
    return {**load, "tokenizer": ByteTokenizer.from_file(root / "target" / "tokenizer.json")}


def make_engine(
    models: dict[str, Any], draft: str | None = None, **cfg: Any
) -> tuple[LLMEngine, list[Event]]:
    events: list[Event] = []
    base = dict(block_size=4, num_kv_blocks=256, max_num_batched_tokens=64)
    base.update(cfg)
    engine = LLMEngine(
        target=models["target"],
        draft=models[draft] if draft else None,
        tokenizer=models["tokenizer"],
        config=EngineConfig(**base),
        event_sink=events.append,
    )
    return engine, events


PROMPTS = [
    "a",
    "hello world",
    "The quick brown fox jumps over the lazy dog",
    "x" * 40,
    "caf\u00e9 \u00fcber",
    "12345",
    "speculative",
    "batching " * 5,
]


def run_staggered(
    engine: LLMEngine, jobs: list[tuple[str, str, SamplingParams]]
) -> dict[str, list[int]]:
    """Add one job per step (arrivals at different steps), run to completion; tokens per request."""
    got: dict[str, list[int]] = defaultdict(list)
    pending = list(jobs)
    while pending or engine.has_unfinished():
        if pending:
            rid, prompt, params = pending.pop(0)
            engine.add_request(rid, prompt, params, tenant="t", principal="p")
        for out in engine.step():
            got[out.request_id].extend(out.new_token_ids)
    return dict(got)


def solo(
    models: dict[str, Any], prompt: str | list[int], params: SamplingParams
) -> tuple[int, ...]:
    engine, _ = make_engine(models)
    return engine.generate([prompt], params)[0].token_ids


def test_batch_of_16_equals_alone_greedy_and_sampled(models: dict[str, Any]) -> None:
    jobs = []
    for i in range(16):
        params = SamplingParams(
            max_tokens=4 + (i * 5) % 17,  # finish at different steps
            ignore_eos=True,
            temperature=0.0 if i % 2 == 0 else 0.9,
            top_k=0 if i % 4 else 20,
            seed=1000 + i,
        )
        jobs.append((f"r{i}", PROMPTS[i % len(PROMPTS)] + str(i), params))
    engine, events = make_engine(models, max_num_batched_tokens=48)
    got = run_staggered(engine, jobs)
    steps = [e for e in events if isinstance(e, BatchStep)]
    assert max(len(set(s.request_ids)) for s in steps) >= 8  # really batched
    for rid, prompt, params in jobs:
        assert tuple(got[rid]) == solo(models, prompt, params), rid


@pytest.mark.parametrize("draft", ["close", "far"])
def test_speculative_greedy_equals_target_only(models: dict[str, Any], draft: str) -> None:
    jobs = [
        (f"s{i}", p, SamplingParams(max_tokens=10 + i, ignore_eos=True))
        for i, p in enumerate(PROMPTS)
    ]
    plain, _ = make_engine(models)
    expected = run_staggered(plain, jobs)
    spec, events = make_engine(models, draft=draft)
    assert run_staggered(spec, jobs) == expected
    provs = {p for e in events if isinstance(e, BatchStep) for p in e.provenance}
    if draft == "close":  # both acceptance paths exercised
        assert {Provenance.DRAFT_ACCEPTED, Provenance.BONUS} <= provs
        assert spec.num_target_passes < plain.num_target_passes
    assert Provenance.TARGET_RECOVERED in provs or draft == "close"
    steps = [e for e in events if isinstance(e, BatchStep) and e.drafts]
    assert all(len(d) == 4 for e in steps for d in e.drafts.values())


@pytest.mark.parametrize("draft", [None, "close"])
def test_preemption_recompute_gives_same_output(models: dict[str, Any], draft: str | None) -> None:
    jobs = [
        (
            f"p{i}",
            p,
            SamplingParams(
                max_tokens=16, ignore_eos=True, temperature=0.0 if i % 2 else 0.8, seed=i
            ),
        )
        for i, p in enumerate(PROMPTS)
    ]
    roomy, _ = make_engine(models, draft=draft)
    expected = run_staggered(roomy, jobs)
    tight, events = make_engine(models, draft=draft, num_kv_blocks=20)  # 80 token slots
    assert run_staggered(tight, jobs) == expected
    assert tight.num_preemptions > 0
    assert all(
        isinstance(e, RequestFinished) and e.reason is FinishReason.LENGTH
        for e in events
        if isinstance(e, RequestFinished)
    )


def test_events_agree_with_what_each_request_received(models: dict[str, Any]) -> None:
    """C6/C11: every token of every BatchStep is tagged, and tags/counts match the outputs."""
    engine, events = make_engine(models, draft="close")
    received: dict[str, list[tuple[int, Provenance]]] = defaultdict(list)
    for i, prompt in enumerate(PROMPTS):
        params = SamplingParams(max_tokens=6 + i, temperature=0.7 if i % 3 else 0.0, seed=i)
        engine.add_request(f"e{i}", prompt, params, tenant="acme", principal="u1", client="k1")
    step_outputs = []
    while engine.has_unfinished():
        step_outputs.append(engine.step())
    steps = [e for e in events if isinstance(e, BatchStep)]
    assert [s.step_id for s in steps] == list(range(1, len(steps) + 1))
    per_step_events = []
    for s in steps:
        by_request: dict[str, list[tuple[int, Provenance]]] = defaultdict(list)
        for tok, rid, prov in zip(s.token_ids, s.request_ids, s.provenance, strict=True):
            by_request[rid].append((tok, prov))
        per_step_events.append(dict(by_request))
        for rid, drafted in s.drafts.items():
            accepted = [t for t, p in by_request.get(rid, []) if p is Provenance.DRAFT_ACCEPTED]
            assert tuple(accepted) == drafted[: len(accepted)]  # accepted drafts are a prefix
    for s_events, outs in zip(per_step_events, step_outputs, strict=True):
        from_outputs = {
            o.request_id: list(zip(o.new_token_ids, o.provenance, strict=True))
            for o in outs
            if o.new_token_ids
        }
        assert s_events == from_outputs
        for o in outs:
            received[o.request_id].extend(zip(o.new_token_ids, o.provenance, strict=True))
    order = [(type(e).__name__, getattr(e, "request_id", None)) for e in events]
    for i in range(len(PROMPTS)):
        rid = f"e{i}"
        started = order.index(("RequestStarted", rid))
        finished = order.index(("RequestFinished", rid))
        first_step = min(
            j for j, e in enumerate(events) if isinstance(e, BatchStep) and rid in e.request_ids
        )
        last_step = max(
            j for j, e in enumerate(events) if isinstance(e, BatchStep) and rid in e.request_ids
        )
        assert started < first_step <= last_step < finished
        end = events[finished]
        assert isinstance(end, RequestFinished)
        assert end.n_generated == len(received[rid])
    start = next(e for e in events if isinstance(e, RequestStarted))
    assert (start.tenant, start.principal, start.client) == ("acme", "u1", "k1")
    assert start.target == models["target"].ref and start.draft == models["close"].ref
    assert start.params["temperature"] == "0.0" and start.prompt_token_ids[0] == 256


def test_bad_requests_fail_alone(models: dict[str, Any]) -> None:
    engine, events = make_engine(models, num_kv_blocks=16)  # context: 64 slots
    good = ("ok", "hello world", GREEDY)
    engine.add_request("long", [256] + [65] * 80, GREEDY, tenant="t", principal="p")
    engine.add_request("unk", [256, 9999, 65], GREEDY, tenant="t", principal="p")
    engine.add_request("temp", "hi", SamplingParams(temperature=-1.0), tenant="t", principal="p")
    engine.add_request("empty", [], GREEDY, tenant="t", principal="p")
    engine.add_request(good[0], good[1], good[2], tenant="t", principal="p")
    with pytest.raises(InvalidRequestError, match="duplicate request id 'ok' \\(still active\\)"):
        engine.add_request("ok", "again", GREEDY, tenant="t", principal="p")
    outs = []
    while engine.has_unfinished():
        outs.extend(engine.step())
    ends = {e.request_id: e for e in events if isinstance(e, RequestFinished)}
    assert ends["long"].reason is FinishReason.ERROR
    assert (
        "prompt too long: expected at most" in ends["long"].error and "got 81" in ends["long"].error
    )
    assert "outside the vocabulary" in ends["unk"].error and "9999" in ends["unk"].error
    assert "temperature must be >= 0" in ends["temp"].error
    assert ends["empty"].error == "prompt is empty"
    assert all(ends[r].n_generated == 0 for r in ("long", "unk", "temp", "empty"))
    assert ends["ok"].reason is FinishReason.LENGTH and ends["ok"].n_generated == GREEDY.max_tokens
    errors = {o.request_id: o.error for o in outs if o.finish_reason is FinishReason.ERROR}
    assert set(errors) == {"long", "unk", "temp", "empty"}
    got = [t for o in outs if o.request_id == "ok" for t in o.new_token_ids]
    assert tuple(got) == solo(models, good[1], GREEDY)
    started = {e.request_id for e in events if isinstance(e, RequestStarted)}
    assert started == {"long", "unk", "temp", "empty", "ok"}  # C1: every request has a chain


def test_stop_token_stop_string_and_delivered_counts(models: dict[str, Any]) -> None:
    tok = models["tokenizer"]
    base = solo(models, "hello world", SamplingParams(max_tokens=30, ignore_eos=True))
    # stop token: generated, not delivered
    stop_id = base[6]
    first = base.index(stop_id)
    engine, events = make_engine(models)
    out = engine.generate(
        ["hello world"], SamplingParams(max_tokens=30, stop_token_ids=(stop_id,))
    )[0]
    end = next(e for e in events if isinstance(e, RequestFinished))
    assert out.token_ids == base[: first + 1] and out.finish_reason is FinishReason.STOP
    assert (end.n_generated, end.n_delivered) == (first + 1, first)
    assert out.text == tok.decode(list(base[:first]))
    # stop string: text ends before it, the tokens that make it are not delivered
    text = tok.decode(list(base))
    i = next(j for j in range(3, len(text)) if text[j] != "\ufffd")
    stop = text[i]
    cut = text.find(stop)
    engine, events = make_engine(models)
    out = engine.generate(
        ["hello world"], SamplingParams(max_tokens=30, stop=(stop,), ignore_eos=True)
    )[0]
    end = next(e for e in events if isinstance(e, RequestFinished))
    assert out.text == text[:cut] and out.finish_reason is FinishReason.STOP
    assert end.n_delivered < end.n_generated == len(out.token_ids)
    assert tok.decode(list(out.token_ids[: end.n_delivered])) == text[:cut]


def test_abort_mid_generation(models: dict[str, Any]) -> None:
    engine, events = make_engine(models, draft="far")
    engine.add_request("a", "hello", GREEDY, tenant="t", principal="p")
    engine.add_request("b", "world", GREEDY, tenant="t", principal="p")
    engine.step()
    engine.step()
    assert engine.abort("a") and not engine.abort("a") and not engine.abort("nope")
    while engine.has_unfinished():
        engine.step()
    ends = {e.request_id: e for e in events if isinstance(e, RequestFinished)}
    assert ends["a"].reason is FinishReason.ABORT and ends["b"].reason is FinishReason.LENGTH
    tagged_a = sum(e.request_ids.count("a") for e in events if isinstance(e, BatchStep))
    assert ends["a"].n_generated == tagged_a > 0
    assert engine.block_manager.num_free_blocks == engine.config.num_kv_blocks


def test_generate_reports_errors_in_order(models: dict[str, Any]) -> None:
    engine, _ = make_engine(models)
    bad, good = engine.generate([[256, 4000], "hi"], GREEDY)
    assert bad.finish_reason is FinishReason.ERROR and "outside the vocabulary" in bad.error
    assert bad.token_ids == () and good.finish_reason is FinishReason.LENGTH
    assert good.prompt_token_ids == (256, 104, 105)
    assert good.text == models["tokenizer"].decode(list(good.token_ids))
    assert not engine.has_unfinished() and not engine._sequences  # nothing kept after the end


def test_context_limit_ends_with_length(models: dict[str, Any]) -> None:
    engine, _ = make_engine(models, num_kv_blocks=8, num_speculative_tokens=4)  # 32 slots
    out = engine.generate(["x" * 20], SamplingParams(max_tokens=100, ignore_eos=True))[0]
    assert out.finish_reason is FinishReason.LENGTH
    assert len(out.prompt_token_ids) + len(out.token_ids) == engine.max_model_len


def test_from_pretrained_reads_tokenizer_and_k(models: dict[str, Any]) -> None:
    root = models["target"].tokenizer_path.parent.parent
    engine = LLMEngine.from_pretrained(
        root / "target", root / "close", num_speculative_tokens=2, dtype=torch.float64
    )
    assert engine.num_speculative_tokens == 2 and engine.draft is not None
    out = engine.generate(["hello world"], GREEDY)[0]
    assert out.token_ids == solo(models, "hello world", GREEDY)


DEMO = Path(__file__).resolve().parents[2] / "auditlog" / "engine" / "demo_models"


@pytest.mark.skipif(
    not (DEMO / "target" / "model.safetensors").is_file(), reason="demo models not built"
)
def test_demo_pair_speculative_matches_target_and_accepts_often() -> None:
    from auditlog.engine.corpus import prompts

    texts = prompts(num_prompts=4, seed=11)
    params = SamplingParams(max_tokens=48)
    plain = LLMEngine.demo(speculative=False).generate(texts, params)
    events: list[Event] = []
    spec_engine = LLMEngine.demo(event_sink=events.append)
    spec = spec_engine.generate(texts, params)
    assert [o.token_ids for o in spec] == [o.token_ids for o in plain]
    verifications = [(e, rid) for e in events if isinstance(e, BatchStep) for rid in e.drafts]
    received = sum(e.request_ids.count(rid) for e, rid in verifications)
    assert received / len(verifications) >= 2.5  # DESIGN budget: tokens per target pass, k = 4
