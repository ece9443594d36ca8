"""Reference inference engine: paged KV cache, continuous batching, speculative decoding.

``LLMEngine`` emits ``auditlog.events`` into an event sink; see ``engine_core`` for the contract.
Importing this package loads torch but builds nothing.
"""

from __future__ import annotations

from auditlog.engine.config import EngineConfig, ModelConfig
from auditlog.engine.llm_engine import LLMEngine
from auditlog.engine.loader import LoadedModel, load_model
from auditlog.engine.outputs import RequestOutput, StepOutput
from auditlog.engine.sampler import SamplingParams

__all__ = [
    "EngineConfig",
    "LLMEngine",
    "LoadedModel",
    "ModelConfig",
    "RequestOutput",
    "SamplingParams",
    "StepOutput",
    "load_model",
]
