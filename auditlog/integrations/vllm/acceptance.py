"""Per-step speculative acceptance, carried from vLLM's scheduler to the frontend.

vLLM's scheduler (engine-core process) knows, per request and verification step, how many draft
tokens were proposed and how many were accepted (``RequestSpecDecodeMetrics.observe``; with
``per_request_spec_decode_metrics="detailed"`` it keeps the ordered per-step lists), but it sends
them to the frontend only with the request's final output. :func:`attach_step_acceptance` wraps
``Scheduler.update_from_output`` so that every other output of a step with a verification carries
a one-step ``RequestSpecDecodeMetrics`` (``histogram`` empty marks it; vLLM's own cumulative object
always has ``k + 1`` buckets). The field already exists and crosses the process boundary, so
nothing else changes; the frontend stores it and replaces it with the cumulative one at the end.

Provenance of one step's ``n`` tokens with ``a`` accepted of ``d`` drafts (C6): the first
``min(a, n)`` are ``draft_accepted``; token ``a`` (when kept) is ``bonus`` if ``a == d``, else
``target_recovered``. Tokens cut off by a stop condition are a suffix, so the kept prefix keeps
exact labels. A step without a verification yields ``target`` tokens (one per step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auditlog.errors import EngineError
from auditlog.events import Provenance

__all__ = ["StepAcceptance", "attach_step_acceptance", "step_provenance"]


@dataclass(frozen=True, slots=True)
class StepAcceptance:
    """One verification step of one request: ``num_accepted`` of ``num_drafted`` drafts."""

    num_accepted: int
    num_drafted: int

    @staticmethod
    def of(output: Any, num_seen: int) -> StepAcceptance | None:
        """The acceptance of ``output``'s step, given ``num_seen`` verification steps of this
        request seen before; None when the step had no verification."""
        metrics = getattr(output, "spec_decode_metrics", None)
        if metrics is None:
            return None
        accepted, drafted = metrics.per_step_accepted, metrics.per_step_drafted
        if not metrics.histogram:  # a one-step object from attach_step_acceptance
            return StepAcceptance(int(accepted[0]), int(drafted[0]))
        if len(accepted) == num_seen:
            return None
        if len(accepted) != num_seen + 1 or len(drafted) != len(accepted):
            raise EngineError(
                f"auditlog: request {output.request_id}: vLLM reported {len(accepted)} "
                f"verification steps, {num_seen} were seen before this one"
            )
        return StepAcceptance(int(accepted[-1]), int(drafted[-1]))


def step_provenance(num_tokens: int, acceptance: StepAcceptance | None) -> list[Provenance]:
    """Provenance of one request's ``num_tokens`` tokens in one step (module docstring)."""
    if acceptance is None:
        if num_tokens != 1:
            raise EngineError(
                f"auditlog: {num_tokens} tokens in one step without acceptance counts "
                "(speculative decoding needs per_request_spec_decode_metrics='detailed')"
            )
        return [Provenance.TARGET]
    a, d = acceptance.num_accepted, acceptance.num_drafted
    if not 0 <= a <= d or num_tokens > a + 1:
        raise EngineError(f"auditlog: {num_tokens} tokens do not fit {a} of {d} drafts accepted")
    out = [Provenance.DRAFT_ACCEPTED] * min(a, num_tokens)
    if num_tokens > a:
        out.append(Provenance.BONUS if a == d else Provenance.TARGET_RECOVERED)
    return out


def attach_step_acceptance(scheduler_cls: Any) -> None:
    """Wrap ``scheduler_cls.update_from_output`` (module docstring). Idempotent."""
    original: Callable[..., Any] = scheduler_cls.update_from_output
    if getattr(original, "_auditlog_wrapped", False):
        return
    from vllm.v1.metrics.stats import RequestSpecDecodeMetrics

    def update_from_output(self: Any, scheduler_output: Any, model_runner_output: Any) -> Any:
        before = {
            rid: len(req.spec_decode_metrics.per_step_accepted)
            for rid in scheduler_output.scheduled_spec_decode_tokens
            if (req := self.requests.get(rid)) is not None and req.spec_decode_metrics is not None
        }
        result = original(self, scheduler_output, model_runner_output)
        if not before:
            return result
        for batch in result.values():
            for out in batch.outputs:
                req = self.requests.get(out.request_id)
                if out.spec_decode_metrics is not None or req is None:
                    continue
                metrics = req.spec_decode_metrics
                if metrics is not None and len(metrics.per_step_accepted) > before.get(
                    out.request_id, len(metrics.per_step_accepted)
                ):
                    out.spec_decode_metrics = RequestSpecDecodeMetrics(
                        num_spec_tokens=metrics.num_spec_tokens,
                        per_step_accepted=[metrics.per_step_accepted[-1]],
                        per_step_drafted=[metrics.per_step_drafted[-1]],
                    )
        return result

    update_from_output._auditlog_wrapped = True  # type: ignore[attr-defined]
    scheduler_cls.update_from_output = update_from_output
