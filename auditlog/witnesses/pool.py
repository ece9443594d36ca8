"""Submit each checkpoint to the policy's HTTP witnesses, in the background, and keep what they
cosign (C10 with witnesses outside the operator's reach).

:class:`WitnessPool` is a recorder witness (``submit(origin, size, note)``): it only queues the
checkpoint and returns, so a slow or unreachable witness never blocks recording. One background
thread takes the queued checkpoints in order, asks every witness of the policy that has a URL
for its cosignature, verifies each answer, and stores the cosignatures next to the checkpoint.
The queue is bounded (``max_pending`` per log): when witnesses fall that far behind, the oldest
waiting checkpoint is dropped (a later one's consistency proof covers the trees between).
:meth:`state` says whether the policy counts the log's latest checkpoint witnessed, and what
each witness answered.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from auditlog.errors import AuditlogError, RecorderError
from auditlog.ledger.checkpoint import parse_checkpoint
from auditlog.ledger.cosignature import Cosignature
from auditlog.ledger.merkle_proofs import consistency_proof
from auditlog.ledger.note import split_note
from auditlog.ledger.witness_policy import WitnessPolicy
from auditlog.store import StoredNodeSource, get_log_id
from auditlog.store.cosignatures import insert_cosignatures, last_cosigned_size

from .background import CheckpointQueue
from .client import WitnessClient
from .monitor import LatestAnswers, ask_latest
from .protocol import WitnessAhead, WitnessUnavailable
from .storing import write_retrying

__all__ = ["WitnessPool", "WitnessState"]

log = structlog.get_logger("auditlog.witnesses")


@dataclass(slots=True)
class WitnessState:
    """What the witnesses said about a log's latest submitted checkpoint."""

    size: int = 0  # tree size of the latest checkpoint submitted
    witnessed_size: int | None = None  # largest size the policy counts as witnessed
    cosigned_by: list[str] = field(default_factory=list)  # policy names, for ``size``
    errors: dict[str, str] = field(default_factory=dict)  # policy name -> why not
    rollback: bool = False  # a witness has cosigned a larger tree than the log has


class WitnessPool(CheckpointQueue):
    """The HTTP witnesses of a policy, fed from a recorder; see the module docstring.

    ``db_url`` is the log's database (read for consistency proofs, written for cosignatures);
    ``timeout_s`` bounds each HTTP exchange. Nothing happens until the first :meth:`submit`
    (or :meth:`start`); :meth:`close` waits for the queued checkpoints.
    """

    thread_name = "auditlog-witnesses"

    def __init__(
        self,
        db_url: str,
        policy: WitnessPolicy,
        *,
        timeout_s: float = 10.0,
        max_pending: int = 256,
    ) -> None:
        super().__init__(db_url, max_pending=max_pending)
        self.policy = policy
        self._clients: dict[tuple[str, str], WitnessClient] = {}
        self._timeout_s = timeout_s
        self.num_dropped = 0
        self._states: dict[str, WitnessState] = {}

    def _accepts(self, queued: deque[tuple[int, str]], size: int) -> bool:
        return not (queued and queued[-1][0] >= size)  # not newer than what waits already

    def _on_dropped(self, origin: str, size: int) -> None:
        self.num_dropped += 1
        log.warning("witnesses.behind", origin=origin, dropped_before=size)

    def state(self, origin: str) -> WitnessState:
        """A copy of what the witnesses said about the log's latest submitted checkpoint."""
        with self._cond:
            s = self._states.get(origin, WitnessState())
            return WitnessState(
                s.size, s.witnessed_size, list(s.cosigned_by), dict(s.errors), s.rollback
            )

    def latest_cosigned(self, origin: str) -> LatestAnswers:
        """Ask every witness for its latest cosigned checkpoint of ``origin`` (the monitoring
        endpoint, :func:`~auditlog.witnesses.monitor.ask_latest`): a resuming recorder checks
        its database against the answers. Blocks on the network, at most ``timeout_s`` per
        witness; a witness that does not answer is named in ``failed``, never raised."""
        return ask_latest(self.policy, origin, timeout_s=self._timeout_s)

    # -- the background thread --------------------------------------------------------------

    def _worker_context(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=max(1, len(self.policy.witnesses)))

    def _handle(self, context: ThreadPoolExecutor, origin: str, size: int, note: str) -> None:
        try:
            self._witness(context, origin, size, note)
        except Exception:  # the thread must survive anything one checkpoint does
            log.exception("witnesses.failed", origin=origin, size=size)

    def _witness(self, executor: ThreadPoolExecutor, origin: str, size: int, note: str) -> None:
        assert self._engine is not None
        with self._engine.connect() as conn:
            log_id = get_log_id(conn, origin)
        targets = [w for w in self.policy.witnesses.values() if w.url is not None]
        futures = {
            w.name: executor.submit(self._one, w.name, log_id, origin, note) for w in targets
        }
        cosigs: list[Cosignature] = []
        state = WitnessState(size=size)
        for name, future in futures.items():
            try:
                cosigs.append(future.result())
                state.cosigned_by.append(name)
            except WitnessUnavailable as exc:  # try again with the next checkpoint
                state.errors[name] = str(exc)
                log.warning("witnesses.unavailable", origin=origin, size=size, witness=name,
                            error=str(exc))  # fmt: skip
            except WitnessAhead as exc:
                state.errors[name] = str(exc)
                state.rollback = True
                log.error("witnesses.rollback", origin=origin, size=size, witness=name,
                          error=str(exc))  # fmt: skip
            except AuditlogError as exc:  # refused (404, 403, 422, 400, a bad cosignature)
                state.errors[name] = str(exc)
                log.error("witnesses.refused", origin=origin, size=size, witness=name,
                          error=str(exc))  # fmt: skip
        if cosigs:
            received = time.time_ns()
            write_retrying(
                self._engine,
                lambda conn: insert_cosignatures(conn, log_id, size, cosigs, received=received),
            )
        with self._cond:
            previous = self._states.get(origin)
            state.witnessed_size = previous.witnessed_size if previous else None
            if self.policy.satisfied(state.cosigned_by):
                state.witnessed_size = size
            self._states[origin] = state

    def _one(self, name: str, log_id: int, origin: str, note: str) -> Cosignature:
        client = self._client(name, log_id)
        assert self._engine is not None
        engine = self._engine

        def proof(old: int, new: int) -> list[bytes]:
            with engine.connect() as conn:
                return consistency_proof(old, new, StoredNodeSource(conn, log_id))

        cp = parse_checkpoint(split_note(note)[0])
        if cp.origin != origin:
            raise RecorderError(f"checkpoint is for {cp.origin!r}, not {origin!r}")
        return client.submit(note, proof)

    def _client(self, name: str, log_id: int) -> WitnessClient:
        """This witness's client for the log, its known size read from the stored cosignatures."""
        witness = self.policy.witnesses[name]
        key = (name, str(log_id))
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = WitnessClient(witness, timeout_s=self._timeout_s)
            assert self._engine is not None
            with self._engine.connect() as conn:
                client.known_size = last_cosigned_size(
                    conn, log_id, witness.key.name, witness.key.key_id
                )
        return client
