"""The recorder's hot path: `tokens` headers from a per-chain template (docs/FORMAT.md 3.3).

Every ``tokens`` record of one request shares its ``log``, ``request_id`` and ``tenant``; only
numbers, hex digests and provenance codes change. :class:`TokensTemplate` encodes the shared
parts once per chain, with the same encoder as :func:`~auditlog.ledger.records.build_record`,
and fills the rest in with one bytes format, in the canonical key order (RFC 8785: keys sorted by
code unit)::

    kind, log, n, payload, prev, prov, req_seq, request_id, seq, step, tenant, ts, v

The bytes are exactly those ``build_record(..., trusted=True)`` writes for the same record (a
property test checks it), so the verifier, which re-parses every stored header, sees no
difference. Like the trusted path, it MUST only get integers for ``n``, ``req_seq``, ``seq``,
``step`` and ``ts``, and a lowercase 64-digit hex ``prev``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import orjson

from auditlog.ledger.hashes import LEAF_HASH_PREFIX
from auditlog.ledger.records import PROVENANCE_CODES, Record, RecordKind

__all__ = ["TokensTemplate", "tokens_payload"]

_sha256 = hashlib.sha256
_TOKENS = RecordKind.TOKENS
_PAYLOAD_DUMPS = orjson.OPT_STRICT_INTEGER  # keys written in canonical order, not sorted
_FORMAT = b'%s%d,"payload":"%s","prev":"%s","prov":[%s],"req_seq":%d%s%d,"step":%d%s%d","v":1}'


def tokens_payload(token_ids: Sequence[int], drafts: Sequence[int]) -> bytes:
    """Canonical bytes of a ``tokens`` record's payload ``{"drafts": [...], "token_ids": [...]}``:
    those of ``payload_bytes(..., trusted=True)``, its keys given in canonical order instead of
    sorted. Raises ``TypeError`` for an id that is not an integer within ±(2^53 − 1)."""
    return orjson.dumps({"drafts": drafts, "token_ids": token_ids}, option=_PAYLOAD_DUMPS)


class _JsonStrings(dict[str, bytes]):
    """JSON strings of the provenance codes, encoded once (any other value: encoded on use)."""

    def __missing__(self, key: str) -> bytes:
        return orjson.dumps(key)


_PROV = _JsonStrings({code: orjson.dumps(code) for code in PROVENANCE_CODES})


class TokensTemplate:
    """The constant parts of one request chain's ``tokens`` headers, encoded once."""

    __slots__ = ("_head", "_mid", "_tail", "request_id", "tenant")

    def __init__(self, log: str, request_id: str, tenant: str | None) -> None:
        self.request_id = request_id
        self.tenant = tenant
        self._head = b'{"kind":"tokens","log":' + orjson.dumps(log) + b',"n":'
        self._mid = b',"request_id":' + orjson.dumps(request_id) + b',"seq":'
        tenant_part = b"" if tenant is None else b',"tenant":' + orjson.dumps(tenant)
        self._tail = tenant_part + b',"ts":"'

    def build(
        self,
        seq: int,
        req_seq: int,
        ts: int,
        prev: str,
        payload: bytes,
        step: int,
        n: int,
        prov: Iterable[str],
    ) -> Record:
        """The ``tokens`` record ``seq`` of this chain (``prev``: the previous leaf, hex).

        Positional arguments are accepted (in this order) for the recorder's hot loop.
        """
        body = _FORMAT % (
            self._head,
            n,
            _sha256(payload).hexdigest().encode(),
            prev.encode(),
            b",".join(map(_PROV.__getitem__, prov)),
            req_seq,
            self._mid,
            seq,
            step,
            self._tail,
            ts,
        )
        leaf = _sha256(LEAF_HASH_PREFIX + body).digest()
        return Record(seq, _TOKENS, self.request_id, req_seq, ts, self.tenant, body, leaf, payload)
