"""One HTTP witness (C2SP tlog-witness): submit a checkpoint, get back a verified cosignature."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

from auditlog.errors import FormatError
from auditlog.ledger.checkpoint import parse_checkpoint
from auditlog.ledger.cosignature import Cosignature
from auditlog.ledger.note import split_note
from auditlog.ledger.witness_policy import PolicyWitness

from .protocol import (
    MAX_RESPONSE_BYTES,
    WitnessAhead,
    WitnessRefused,
    WitnessUnavailable,
    add_checkpoint_body,
    parse_cosignature_response,
    parse_size_body,
)

__all__ = ["ProofSource", "WitnessClient"]

#: ``proof(old, new)``: the RFC 9162 consistency proof between two sizes of the log's tree.
ProofSource = Callable[[int, int], list[bytes]]

_REFUSALS = {
    400: "the witness found the request malformed",
    403: "the witness trusts no signature on the checkpoint (is the log's key configured there?)",
    404: "the witness does not know this log (is its origin configured there?)",
    422: "the witness refused the consistency proof: the log's history differs from the one it "
    "cosigned (a fork or a rewrite)",
}
#: 409 answers followed in one submission (each carries the witness's size; two are enough).
MAX_CONFLICTS = 3


class WitnessClient:
    """Submits checkpoints of one log to one witness and verifies what comes back.

    ``known_size`` is the tree size this witness last cosigned for the log, as far as this
    client knows (None: unknown; the first submission sends ``old 0`` and learns it from 409).
    """

    def __init__(self, witness: PolicyWitness, *, timeout_s: float = 10.0) -> None:
        if witness.url is None:
            raise FormatError(f"witness {witness.name!r} has no URL to submit checkpoints to")
        self.witness = witness
        self.url = witness.url.rstrip("/") + "/add-checkpoint"
        self.timeout_s = timeout_s
        self.known_size: int | None = None

    def submit(self, note: str, proof: ProofSource) -> Cosignature:
        """Have the witness cosign ``note`` (the log's signed checkpoint); returns the witness's
        cosignature, verified against its key over the checkpoint.

        Raises :class:`WitnessAhead` when the witness has cosigned a larger tree (rollback),
        :class:`WitnessRefused` (404, 403, 422, 400, bad cosignature) and
        :class:`WitnessUnavailable` (network error, 5xx).
        """
        body_text = split_note(note)[0]
        size = parse_checkpoint(body_text).size
        old = self.known_size if self.known_size is not None else 0
        for _ in range(MAX_CONFLICTS):
            if old > size:
                raise WitnessAhead(
                    f"witness {self.witness.name!r} has cosigned size {old}, the log has {size}: "
                    "the log was rolled back",
                    old,
                )
            status, answer = self._post(
                add_checkpoint_body(old, proof(old, size) if old else [], note)
            )
            if status == 409:
                old = parse_size_body(answer)
                self.known_size = old
                continue
            if status in _REFUSALS:
                detail = answer[:200].decode("utf-8", errors="replace").strip()
                raise WitnessRefused(f"{self.witness.name}: {_REFUSALS[status]} ({detail})", status)
            if status != 200:
                raise WitnessUnavailable(f"{self.witness.name}: HTTP {status}")
            cosig = self._verified(answer, body_text)
            self.known_size = size
            return cosig
        raise WitnessRefused(f"{self.witness.name}: 409 Conflict {MAX_CONFLICTS} times", 409)

    def _verified(self, answer: bytes, body_text: str) -> Cosignature:
        key = self.witness.key
        try:
            lines = parse_cosignature_response(answer)
        except FormatError as exc:
            raise WitnessRefused(f"{self.witness.name}: bad response: {exc}", 0) from None
        for cosig in lines:
            if (cosig.name, cosig.key_id) == (key.name, key.key_id):
                if key.verify(cosig, body_text):
                    return cosig
                raise WitnessRefused(
                    f"{self.witness.name}: its cosignature does not verify under its key", 0
                )
        raise WitnessRefused(f"{self.witness.name}: no cosignature by its key in the answer", 0)

    def _post(self, body: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return int(response.status), response.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read(MAX_RESPONSE_BYTES)
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
            raise WitnessUnavailable(f"{self.witness.name}: {exc}") from exc
