"""OpenTelemetry export: one span per request, per the GenAI semantic conventions (extra ``otel``).

:class:`GenAiSpanExporter` turns a request's trail, read back from the log once its end record
is durable, into one span named ``{gen_ai.operation.name} {gen_ai.request.model}``, from the start
record's time to the end record's, with:

- ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``gen_ai.response.id`` (the trail's request id),
  ``gen_ai.response.finish_reasons``, ``gen_ai.usage.input_tokens`` /
  ``gen_ai.usage.output_tokens`` (prompt tokens; tokens generated), and the sampling parameters
  recorded in the start record as ``gen_ai.request.temperature``, ``top_p``, ``top_k``,
  ``max_tokens``, ``seed``, ``frequency_penalty``, ``presence_penalty``, ``stop_sequences``;
- ``auditlog.log.origin``, ``auditlog.request.id``, ``auditlog.record.leaf_index`` (the end
  record's index in the Merkle log), ``auditlog.record.hash`` (its RFC 9162 leaf hash, hex), and
  ``auditlog.verdict.url`` when a URL template is configured: enough to find and verify the
  trail, nothing of its content.

Content (prompt and output token ids and prompt text) goes into ``gen_ai.input.messages`` /
``gen_ai.output.messages`` (the conventions' message JSON: ``role``, ``parts``, an output's
``finish_reason``; token ids as a part of type ``token_ids``) only with ``capture_content=True``
(the conventions require it to be optional; the audit log, not the telemetry backend, is the
access-controlled sink).

:class:`SpanSink` wraps a recorder's ``record``: on each ``RequestFinished`` it queues the request,
and a background thread waits for the end record to be durable, reads the trail and exports it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from typing import Any

import orjson
import structlog

from auditlog.errors import AuditlogError
from auditlog.events import Event, RequestFinished
from auditlog.ledger.hashes import leaf_hash
from auditlog.recorder import AuditRecorder
from auditlog.trails import Trail, read_trail

__all__ = ["GenAiSpanExporter", "SpanSink"]

log = structlog.get_logger("auditlog.otel")

# start-record params -> GenAI request attribute (floats are decimal strings in the trail)
_REQUEST_ATTRS: Mapping[str, tuple[str, type]] = {
    "temperature": ("gen_ai.request.temperature", float),
    "top_p": ("gen_ai.request.top_p", float),
    "top_k": ("gen_ai.request.top_k", float),
    "max_tokens": ("gen_ai.request.max_tokens", int),
    "max_new_tokens": ("gen_ai.request.max_tokens", int),
    "seed": ("gen_ai.request.seed", int),
    "frequency_penalty": ("gen_ai.request.frequency_penalty", float),
    "presence_penalty": ("gen_ai.request.presence_penalty", float),
}


class GenAiSpanExporter:
    """Emits one span per trail through ``tracer_provider`` (the global one if None)."""

    def __init__(
        self,
        tracer_provider: Any = None,
        *,
        operation: str = "text_completion",
        provider: str = "vllm",
        capture_content: bool = False,
        verdict_url: str | None = None,  # "https://audit.example/{origin}/{request_id}"
    ) -> None:
        from opentelemetry import trace

        self.tracer = trace.get_tracer("auditlog", tracer_provider=tracer_provider)
        self.operation, self.provider = operation, provider
        self.capture_content = capture_content
        self.verdict_url = verdict_url

    def attributes(self, trail: Trail) -> dict[str, Any]:
        if trail.end is None or not trail.records:
            raise AuditlogError(f"trail {trail.request_id!r} has no end record yet")
        params = trail.start.get("params") or {}
        model = (trail.start.get("target") or {}).get("name", "")
        end_record = trail.records[-1]
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": self.operation,
            "gen_ai.provider.name": self.provider,
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,  # the recorded target served the request
            "gen_ai.response.id": trail.request_id,
            "gen_ai.response.finish_reasons": [str(trail.end["reason"])],
            "gen_ai.usage.input_tokens": len(trail.prompt_token_ids),
            "gen_ai.usage.output_tokens": int(trail.end["n_generated"]),
            "auditlog.log.origin": trail.origin,
            "auditlog.request.id": trail.request_id,
            "auditlog.record.leaf_index": end_record.seq,
            "auditlog.record.hash": leaf_hash(end_record.body).hex(),
        }
        for name, (attr, kind) in _REQUEST_ATTRS.items():
            value = params.get(name)
            if value is not None:
                attrs[attr] = kind(value)
        stop = params.get("stop")
        if stop:
            attrs["gen_ai.request.stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if self.verdict_url:
            attrs["auditlog.verdict.url"] = self.verdict_url.format(
                origin=trail.origin, request_id=trail.request_id
            )
        if self.capture_content:
            attrs |= _content(trail)
        return attrs

    def export(self, trail: Trail) -> None:
        from opentelemetry.trace import SpanKind

        attrs = self.attributes(trail)
        span = self.tracer.start_span(
            f"{self.operation} {attrs['gen_ai.request.model']}",
            kind=SpanKind.INTERNAL,
            start_time=int(trail.start["ts"]),
            attributes=attrs,
        )
        if trail.end is not None and trail.end.get("reason") == "error":
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", "engine_error")
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=int(trail.end["ts"]) if trail.end else None)


def _content(trail: Trail) -> dict[str, str]:
    """The messages in the conventions' JSON shape (a message: ``role`` and ``parts``, an output
    message also ``finish_reason``; a part: ``type`` and more). The prompt is a ``text`` part; the
    token ids, the recorded content, are a generic part of type ``token_ids``."""
    prompt = [{"type": "text", "content": trail.prompt_text or ""},
              {"type": "token_ids", "content": trail.prompt_token_ids}]  # fmt: skip
    output = [{"type": "token_ids", "content": trail.token_ids}]
    reason = str(trail.end["reason"]) if trail.end else ""
    return {
        "gen_ai.input.messages": orjson.dumps([{"role": "user", "parts": prompt}]).decode(),
        "gen_ai.output.messages": orjson.dumps(
            [{"role": "assistant", "parts": output, "finish_reason": reason}]
        ).decode(),
    }


_STOP = object()


class SpanSink:
    """``record`` for engines: records, then exports each finished request once durable."""

    def __init__(
        self, recorder: AuditRecorder, exporter: GenAiSpanExporter, *, timeout_s: float = 60.0
    ) -> None:
        self.recorder, self.exporter, self.timeout_s = recorder, exporter, timeout_s
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, event: Event) -> None:
        self.recorder.record(event)
        if isinstance(event, RequestFinished):
            self._start()
            self._queue.put(event.request_id)

    def close(self) -> None:
        """Export what is queued, then stop the thread (call before closing the recorder)."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(self.timeout_s * 2)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="auditlog-otel", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            request_id = str(item)
            try:
                self.recorder.wait_closed(request_id, self.timeout_s)
                # Readers show what a signed checkpoint covers: sign one over the end record.
                self.recorder.checkpoint_now(self.timeout_s)
                trusted = [signer.verifier for signer in self.recorder.signers]
                with self.recorder.engine.connect() as conn:
                    trail = read_trail(conn, self.recorder.origin, request_id, trusted=trusted)
                self.exporter.export(trail)
            except Exception as exc:  # telemetry never stops recording; it says so loudly
                log.error("otel.export_failed", request_id=request_id, error=str(exc))
