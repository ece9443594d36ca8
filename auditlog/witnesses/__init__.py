"""Witnesses outside the operator's reach: C2SP tlog-witness over HTTP.

:class:`WitnessPool` feeds a recorder's checkpoints to the witnesses of a
:class:`~auditlog.ledger.witness_policy.WitnessPolicy` in the background and stores the verified
cosignatures; :class:`WitnessClient` is one witness.
"""

from __future__ import annotations

from .client import WitnessClient
from .pool import WitnessPool, WitnessState
from .protocol import WitnessAhead, WitnessError, WitnessRefused, WitnessUnavailable

__all__ = [
    "WitnessAhead",
    "WitnessClient",
    "WitnessError",
    "WitnessPool",
    "WitnessRefused",
    "WitnessState",
    "WitnessUnavailable",
]
