"""Re-run a planned request alone on the reference engine and compare (torch loaded lazily).

The engine is built from the envelope: the recorded dtype, speculative depth and context limit,
batch-invariant kernels, on the recorded device type. It runs the request by itself (the trail's
prompt token ids, sampling parameters and seed) and its events give the replayed tokens with
their provenance, compared by :func:`auditlog.replay.compare.compare`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from auditlog.errors import ConfigurationError, InvalidRequestError, ReplayRefusedError

from .compare import ReplayResult, compare, refused
from .models import find_model
from .plan import ReplayPlan

if TYPE_CHECKING:
    from auditlog.engine import LLMEngine

__all__ = ["DEFAULT_MODEL_DIR", "replay"]

#: Where models are looked up by default: the bundled demo pair (the engine's ``DEMO_MODELS_DIR``,
#: named here without importing torch).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "engine" / "demo_models"
_DTYPES = ("float32", "bfloat16", "float16")


def _engine(plan: ReplayPlan, model_dir: Path, device: str) -> LLMEngine:
    import torch

    from auditlog.engine import EngineConfig, LLMEngine, load_model
    from auditlog.engine.llm_engine import ENGINE_NAME
    from auditlog.engine.numerics import kernels_name
    from auditlog.engine.tokenizer import ByteTokenizer

    env = plan.envelope
    here = {
        "engine": ENGINE_NAME,
        "kernels": kernels_name(True),
        "device": torch.device(device).type,
    }
    for name, value in here.items():
        if env[name] != value:
            raise ReplayRefusedError(
                f"recorded {name} {env[name]!r}, this replayer has {value!r}: the same numerics "
                "cannot be guaranteed"
            )
    if env["dtype"] not in _DTYPES:
        raise ReplayRefusedError(f"recorded dtype {env['dtype']!r} is not supported")
    dtype = getattr(torch, env["dtype"])
    target = load_model(find_model(model_dir, plan.target, "target"), device=device, dtype=dtype)
    draft = None
    if plan.draft is not None:
        draft_dir = find_model(model_dir, plan.draft, "draft")
        draft = load_model(draft_dir, device=device, dtype=dtype)
    config = EngineConfig(
        num_speculative_tokens=env["speculative_tokens"],
        max_model_len=env["max_model_len"],
        batch_invariant=True,
    )
    engine = LLMEngine(
        target=target,
        draft=draft,
        tokenizer=ByteTokenizer.from_file(target.tokenizer_path),
        config=config,
        device=device,
    )
    if engine.replay_envelope != dict(env):
        raise ReplayRefusedError(
            f"this engine's envelope {engine.replay_envelope} differs from the recorded {env}"
        )
    return engine


def replay(
    plan: ReplayPlan, *, model_dir: Path = DEFAULT_MODEL_DIR, device: str = "cpu"
) -> ReplayResult:
    """Replay ``plan`` alone and compare; a refusal is a REFUSED result with its reason."""
    from auditlog.engine import SamplingParams
    from auditlog.events import BatchStep, Event

    try:
        params = SamplingParams.from_record(plan.params)
    except InvalidRequestError as exc:
        return refused(plan.request_id, f"recorded sampling parameters: {exc}")
    try:
        engine = _engine(plan, model_dir, device)
    except ReplayRefusedError as exc:
        return refused(plan.request_id, str(exc))
    except ConfigurationError as exc:
        return refused(plan.request_id, f"model files: {exc}")
    token_ids: list[int] = []
    provenance: list[str] = []
    drafts: list[tuple[int, ...]] = []

    def collect(event: Event) -> None:
        if isinstance(event, BatchStep):
            for token, rid, prov in zip(
                event.token_ids, event.request_ids, event.provenance, strict=True
            ):
                if rid == plan.request_id:
                    token_ids.append(token)
                    provenance.append(prov.value)
            if event.drafts.get(plan.request_id):
                drafts.append(tuple(event.drafts[plan.request_id]))

    engine.event_sink = collect
    engine.add_request(
        plan.request_id,
        list(plan.prompt_token_ids),
        params,
        tenant=plan.tenant,
        principal=plan.principal,
    )
    while engine.has_unfinished():
        engine.step()
    return compare(plan, token_ids, provenance, drafts)
