"""The vLLM general plugin: patches, process-wide state, configuration.

``register`` is the ``vllm.general_plugins`` entry point (vLLM calls it in every process it
starts). It does nothing unless ``AUDITLOG_VLLM=1``; then it checks the vLLM version against
:data:`SUPPORTED` (any other version raises :class:`ConfigurationError`: the hooks are vLLM
internals) and wraps, on the classes:

- ``InputProcessor.__init__`` (frontend): reads the ``VllmConfig`` once for the model, tokenizer
  and draft directories (digested as in ``auditlog.engine.loader``, C4) and ``k``.
- ``OutputProcessor.add_request`` / ``process_outputs`` / ``abort_requests`` (frontend):
  request start, one ``BatchStep`` per call, request end (``adapter`` module).
- ``Scheduler.update_from_output`` (engine core): per-step acceptance (``acceptance`` module).

The recorder is opened in the frontend at the first request, from the environment
(``MiddlewareConfig.from_env``), unless :func:`install` was given one. Tests and embedders call
``install(recorder=...)`` directly. ``AUDITLOG_OTEL=1`` also exports one OpenTelemetry GenAI span
per request (``auditlog.integrations.otel``) through the global tracer provider.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import Any

from auditlog.errors import ConfigurationError
from auditlog.events import FinishReason, ModelRef
from auditlog.recorder import AuditRecorder

from .adapter import VllmAuditAdapter, finish_reason

__all__ = ["ENABLE_ENV", "SUPPORTED", "adapter", "close", "install", "recorder", "register"]

ENABLE_ENV = "AUDITLOG_VLLM"
OTEL_ENV = "AUDITLOG_OTEL"
SUPPORTED = ("0.32.0", "0.33.0")  # [low, high): the versions whose internals were checked


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed = False
        self.recorder: AuditRecorder | None = None
        self.owns_recorder = False
        self.vllm_config: Any = None
        self.adapter: VllmAuditAdapter | None = None
        self.exporter: Any = None  # GenAiSpanExporter given to install()
        self.span_sink: Any = None  # SpanSink, when spans are exported


_state = _State()


def register() -> None:
    """Entry point of the ``vllm.general_plugins`` group: hooks in only if enabled."""
    if os.environ.get(ENABLE_ENV) == "1":
        install()


def check_version(version: str) -> None:
    from packaging.version import Version

    low, high = SUPPORTED
    if not Version(low) <= Version(version) < Version(high):
        raise ConfigurationError(
            f"auditlog's vLLM plugin supports vLLM >={low},<{high}; found {version}. "
            "Its hooks are vLLM internals: check them against this version before widening."
        )


def install(recorder: AuditRecorder | None = None, *, exporter: Any = None) -> None:
    """Hook into vLLM (idempotent); ``recorder`` replaces the one from the environment and
    ``exporter`` (a ``GenAiSpanExporter``) exports one span per request."""
    import vllm

    check_version(vllm.__version__)
    with _state.lock:
        if exporter is not None:
            _state.exporter, _state.adapter = exporter, None
        if recorder is not None:
            _state.recorder, _state.owns_recorder, _state.adapter = recorder, False, None
        if _state.installed:
            return
        _patch()
        _state.installed = True


def recorder() -> AuditRecorder:
    """The process's recorder (opened from the environment on first use)."""
    with _state.lock:
        if _state.recorder is None:
            from auditlog.integrations.settings import MiddlewareConfig

            _state.recorder = MiddlewareConfig.from_env().open_recorder()
            _state.owns_recorder = True
            atexit.register(close)
        return _state.recorder


def adapter() -> VllmAuditAdapter:
    """The process's adapter (built at the first request, after vLLM's config is known)."""
    if _state.adapter is None:
        rec = recorder()
        with _state.lock:
            if _state.adapter is None:
                _state.adapter = _build_adapter(rec, _state.vllm_config)
    return _state.adapter


def close() -> None:
    """Export the spans still queued, then close the recorder if the plugin opened it."""
    if _state.span_sink is not None:
        _state.span_sink.close()
    if _state.owns_recorder and _state.recorder is not None:
        _state.recorder.close()


def _build_adapter(rec: AuditRecorder, config: Any) -> VllmAuditAdapter:
    import vllm

    if config is None:
        raise ConfigurationError("auditlog: vLLM's InputProcessor was built before the plugin")
    model = config.model_config
    spec = config.speculative_config
    draft, k = None, 0
    if spec is not None:
        if spec.method != "draft_model" or not spec.model:
            raise ConfigurationError(
                f"auditlog records speculative decoding with a draft model only, not {spec.method}"
            )
        if config.observability_config.per_request_spec_decode_metrics != "detailed":
            raise ConfigurationError(
                "auditlog needs per_request_spec_decode_metrics='detailed' "
                "(--per-request-spec-decode-metrics detailed) to label drafted tokens"
            )
        draft, k = _model_ref(spec.model, spec.model), int(spec.num_speculative_tokens)
    name = model.served_model_name
    name = name[0] if isinstance(name, list) else name
    return VllmAuditAdapter(
        _sink(rec),
        target=_model_ref(model.model, model.tokenizer, str(name or model.model)),
        draft=draft,
        num_spec_tokens=k,
        engine=f"vllm/{vllm.__version__}",
    )


def _sink(rec: AuditRecorder) -> Any:
    """``rec.record``, or a sink that also exports one GenAI span per request: through the
    exporter given to :func:`install`, or with ``AUDITLOG_OTEL=1`` through the global tracer
    provider (``AUDITLOG_OTEL_CONTENT=1`` adds content)."""
    exporter = _state.exporter
    if exporter is None and os.environ.get(OTEL_ENV) != "1":
        return rec.record
    from auditlog.integrations.otel import GenAiSpanExporter, SpanSink

    if exporter is None:
        exporter = GenAiSpanExporter(capture_content=os.environ.get(f"{OTEL_ENV}_CONTENT") == "1")
    _state.span_sink = SpanSink(rec, exporter)
    return _state.span_sink.record


def _model_ref(model_dir: str, tokenizer_dir: str, name: str | None = None) -> ModelRef:
    from auditlog.engine.loader import TOKENIZER_FILE, WEIGHTS_GLOB, sha256_file, weights_digest

    root, tok = Path(model_dir), Path(tokenizer_dir) / TOKENIZER_FILE
    weights = sorted(root.glob(WEIGHTS_GLOB))
    if not weights or not tok.is_file():
        raise ConfigurationError(
            f"auditlog digests local model directories (C4): {model_dir} needs *.safetensors "
            f"and {tok} must exist"
        )
    config = root / "config.json"
    arch = ""
    if config.is_file():
        import json

        arch = ",".join(json.loads(config.read_text()).get("architectures") or [])
    return ModelRef(
        name=name or str(model_dir), weights_sha256=weights_digest(weights),
        tokenizer_sha256=sha256_file(tok), architecture=arch,
    )  # fmt: skip


def _patch() -> None:
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.engine.input_processor import InputProcessor
    from vllm.v1.engine.output_processor import OutputProcessor

    from .acceptance import attach_step_acceptance

    attach_step_acceptance(Scheduler)
    init, add = InputProcessor.__init__, OutputProcessor.add_request
    process, abort = OutputProcessor.process_outputs, OutputProcessor.abort_requests

    def input_init(self: Any, vllm_config: Any, *args: Any, **kwargs: Any) -> None:
        init(self, vllm_config, *args, **kwargs)
        _state.vllm_config = vllm_config

    def add_request(self: Any, request: Any, prompt: str | None, *args: Any, **kw: Any) -> None:
        new = request.request_id not in self.request_states
        if new and getattr(request, "resumable", False):
            raise ConfigurationError("auditlog cannot record streaming-input (resumable) requests")
        if new:
            adapter().started(request, prompt)  # recorded before vLLM takes the request
        add(self, request, prompt, *args, **kw)

    def process_outputs(self: Any, engine_core_outputs: list[Any], *args: Any, **kw: Any) -> Any:
        live = {o.request_id for o in engine_core_outputs if o.request_id in self.request_states}
        result = process(self, engine_core_outputs, *args, **kw)
        # Outputs are trimmed in place past a stop string: what is recorded is what is returned.
        # Both happen before any consumer of the outputs runs (same thread, no await between).
        ended = {
            o.request_id: finish_reason(o.finish_reason if o.finish_reason is not None else 0)
            for o in engine_core_outputs
            if o.request_id in live and o.request_id not in self.request_states
        }
        if live:
            adapter().step((o for o in engine_core_outputs if o.request_id in live), ended)
        return result

    def abort_requests(self: Any, request_ids: Any, internal: bool) -> list[str]:
        aborted: list[str] = abort(self, request_ids, internal)
        if aborted and _state.adapter is not None:
            for request_id in aborted:
                _state.adapter.finished(request_id, FinishReason.ABORT)
        return aborted

    InputProcessor.__init__ = input_init
    OutputProcessor.add_request = add_request
    OutputProcessor.process_outputs = process_outputs
    OutputProcessor.abort_requests = abort_requests
