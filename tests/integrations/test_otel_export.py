"""OpenTelemetry export: one GenAI span per request, from the durable trail, with the SDK's
in-memory exporter. The auditlog attributes MUST name the end record exactly (its leaf index and
leaf hash as stored in the log), and no content may appear unless configured."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

from integration_fixtures import open_recorder, trail
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from auditlog.events import (
    BatchStep,
    FinishReason,
    ModelRef,
    Provenance,
    RequestFinished,
    RequestStarted,
)
from auditlog.integrations.otel import GenAiSpanExporter, SpanSink
from auditlog.ledger.hashes import leaf_hash
from auditlog.verifier import verify_database

ORIGIN = "otel.test.invalid/0"
TARGET = ModelRef(name="tiny-llama", weights_sha256="a" * 64, tokenizer_sha256="b" * 64)
CONTENT_KEYS = {"gen_ai.input.messages", "gen_ai.output.messages"}


def _run(tmp: Path, db_url: str, *, capture: bool) -> tuple[InMemorySpanExporter, str, Path]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    recorder, signer, db_url, witness = open_recorder(tmp, ORIGIN, db_url)
    sink = SpanSink(recorder, GenAiSpanExporter(
        provider, capture_content=capture, verdict_url="https://audit.invalid/{origin}/{request_id}"
    ))  # fmt: skip
    now = time.time_ns()
    try:
        for rid, prompt in (("r1", (1, 2, 3)), ("r2", (4, 5))):
            sink.record(RequestStarted(
                request_id=rid, tenant="acme", principal="svc@acme", prompt_token_ids=prompt,
                prompt_text="secret prompt", target=TARGET, draft=None, ts=now,
                params={"temperature": "0.7", "top_p": "0.9", "seed": 3, "max_tokens": 4,
                        "stop": ["\n"]},
            ))  # fmt: skip
        sink.record(BatchStep(
            step_id=1, ts=now + 1, token_ids=(7, 8, 9), request_ids=("r1", "r2", "r1"),
            provenance=(Provenance.TARGET,) * 3,
        ))  # fmt: skip
        sink.record(RequestFinished(request_id="r1", reason=FinishReason.LENGTH, n_generated=2,
                                    n_delivered=2, ts=now + 2))  # fmt: skip
        sink.record(RequestFinished(request_id="r2", reason=FinishReason.STOP, n_generated=1,
                                    n_delivered=1, ts=now + 3))  # fmt: skip
        sink.close()
    finally:
        recorder.close()
    assert verify_database(db_url, keys=[signer.verifier_key], witness_dir=witness).ok
    return memory, db_url, witness


def test_one_genai_span_per_request_naming_its_end_record(tmp_path: Path, db_url: str) -> None:
    memory, db_url, _ = _run(tmp_path, db_url, capture=False)
    spans = {s.attributes["gen_ai.response.id"]: s for s in memory.get_finished_spans()}
    assert sorted(spans) == ["r1", "r2"]
    for rid, reason, n_in, n_out in (("r1", "length", 3, 2), ("r2", "stop", 2, 1)):
        span, t = spans[rid], trail(db_url, ORIGIN, rid)
        a = dict(span.attributes or {})
        assert span.name == "text_completion tiny-llama"
        assert a["gen_ai.operation.name"] == "text_completion"
        assert a["gen_ai.request.model"] == a["gen_ai.response.model"] == "tiny-llama"
        assert a["gen_ai.request.temperature"] == 0.7 and a["gen_ai.request.top_p"] == 0.9
        assert a["gen_ai.request.seed"] == 3 and a["gen_ai.request.max_tokens"] == 4
        assert list(a["gen_ai.request.stop_sequences"]) == ["\n"]
        assert list(a["gen_ai.response.finish_reasons"]) == [reason]
        assert a["gen_ai.usage.input_tokens"] == n_in and a["gen_ai.usage.output_tokens"] == n_out
        end = t.records[-1]
        assert end.header["kind"] == "request.end"
        assert a["auditlog.log.origin"] == ORIGIN
        assert a["auditlog.record.leaf_index"] == end.seq
        assert a["auditlog.record.hash"] == leaf_hash(end.body).hex()
        assert a["auditlog.verdict.url"] == f"https://audit.invalid/{ORIGIN}/{rid}"
        assert not CONTENT_KEYS & a.keys()
        assert "secret prompt" not in repr(a)  # never content unless configured
        assert span.start_time == t.start["ts"] and span.end_time == t.end["ts"]


def test_content_only_when_configured(tmp_path: Path, db_url: str) -> None:
    """With content configured, the messages follow the conventions' JSON shape: every message
    has ``role`` and ``parts`` (an output message also ``finish_reason``), every part a ``type``;
    the prompt text and the token ids exactly as recorded."""
    memory, _, _ = _run(tmp_path, db_url, capture=True)
    spans = {s.attributes["gen_ai.response.id"]: s for s in memory.get_finished_spans()}
    a = dict(spans["r1"].attributes or {})
    assert a.keys() >= CONTENT_KEYS
    inputs = json.loads(str(a["gen_ai.input.messages"]))
    outputs = json.loads(str(a["gen_ai.output.messages"]))
    assert [m["role"] for m in inputs] == ["user"] and [m["role"] for m in outputs] == ["assistant"]
    assert outputs[0]["finish_reason"] == "length"
    assert all(isinstance(part["type"], str) for m in inputs + outputs for part in m["parts"])
    assert inputs[0]["parts"] == [{"type": "text", "content": "secret prompt"},
                                  {"type": "token_ids", "content": [1, 2, 3]}]  # fmt: skip
    assert outputs[0]["parts"] == [{"type": "token_ids", "content": [7, 9]}]
