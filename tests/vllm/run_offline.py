"""Run vLLM's offline ``LLM`` with the auditlog plugin installed; print what the caller received.

Run as a script (vLLM may start worker processes with spawn: hence the main guard). Arguments:
``TARGET DB_URL KEY_FILE SPOOL [--draft DIR] [--k N] [--witness DIR]``. Prints one JSON object on
the last line:
``{"outputs": [{"request_id", "prompt_token_ids", "token_ids", "finish_reason",
"per_step_accepted", "per_step_drafted"}, ...]}``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

PROMPTS = ["Hello world", "The quick brown fox", "Audit every token", "a", "Zebra crossing at"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("db_url")
    parser.add_argument("key_file")
    parser.add_argument("spool")
    parser.add_argument("--draft")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--witness")
    parser.add_argument("--summary-metrics", action="store_true", help="not 'detailed'")
    parser.add_argument("--otel", action="store_true", help="export spans to memory, print them")
    args = parser.parse_args()

    from vllm import LLM, SamplingParams

    from auditlog.integrations.vllm import close, install
    from auditlog.ledger import DirectoryWitness, Signer
    from auditlog.recorder import AuditRecorder

    signer = Signer.from_key_string(Path(args.key_file).read_text().strip())
    recorder = AuditRecorder.open(
        args.db_url, origin=signer.name, signers=[signer], spool_path=args.spool,
        witnesses=[DirectoryWitness(Path(args.witness))] if args.witness else [],
    )  # fmt: skip
    memory = exporter = None
    if args.otel:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from auditlog.integrations.otel import GenAiSpanExporter

        memory, provider = InMemorySpanExporter(), TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        exporter = GenAiSpanExporter(provider, operation="text_completion")
    install(recorder=recorder, exporter=exporter)
    kwargs: dict[str, object] = {}
    if args.draft:
        kwargs["speculative_config"] = {
            "method": "draft_model", "model": args.draft, "num_speculative_tokens": args.k,
        }  # fmt: skip
        kwargs["per_request_spec_decode_metrics"] = (
            "summary" if args.summary_metrics else "detailed"
        )
    llm = LLM(model=args.target, dtype="float32", max_model_len=256, seed=0,
              enforce_eager=True, **kwargs)  # fmt: skip
    params = [
        SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True),
        SamplingParams(temperature=0.8, top_p=0.9, seed=7, max_tokens=17),
        SamplingParams(temperature=0.0, max_tokens=9, stop_token_ids=[65]),
        # top_k only without drafts: vLLM 0.32's CPU rejection sampler fails on it (index error)
        SamplingParams(
            temperature=1.0, top_k=0 if args.draft else 20, seed=11, max_tokens=30, ignore_eos=True
        ),
        SamplingParams(temperature=0.0, max_tokens=12, stop=["e"]),
    ]
    results = llm.generate(PROMPTS, params)
    close()  # exports the spans still queued
    recorder.close()
    outputs = []
    for res in results:
        comp = res.outputs[0]
        metrics = comp.spec_decode_metrics
        outputs.append({
            "request_id": res.request_id,
            "prompt_token_ids": list(res.prompt_token_ids or []),
            "token_ids": list(comp.token_ids),
            "finish_reason": comp.finish_reason,
            "per_step_accepted": list(metrics.per_step_accepted) if metrics else None,
            "per_step_drafted": list(metrics.per_step_drafted) if metrics else None,
        })  # fmt: skip
    spans = [dict(s.attributes or {}) for s in memory.get_finished_spans()] if memory else []
    print(json.dumps({"outputs": outputs, "spans": spans}, default=list))


if __name__ == "__main__":
    main()
