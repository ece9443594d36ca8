"""Deterministic replay of a request from its verified trail (docs/REPLAY.md).

``plan_replay`` reads what a replay needs from a verified evidence bundle (pure); ``replay``
re-runs the request alone on the reference engine, with model files found by digest, and
compares every generated token and its provenance with the record; ``replay_bundle`` verifies
a bundle first and replays only what verifies (the CLI and the API use it). Importing this
package does not load torch.
"""

from __future__ import annotations

from .compare import Divergence, ReplayResult, ReplayStatus, compare
from .plan import ModelIdentity, ReplayPlan, check_envelope, plan_replay
from .run import DEFAULT_MODEL_DIR, replay
from .verified import replay_bundle

__all__ = [
    "DEFAULT_MODEL_DIR",
    "Divergence",
    "ModelIdentity",
    "ReplayPlan",
    "ReplayResult",
    "ReplayStatus",
    "check_envelope",
    "compare",
    "plan_replay",
    "replay",
    "replay_bundle",
]
