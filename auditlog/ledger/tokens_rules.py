"""The rules of one ``tokens`` record against its payload (docs/FORMAT.md section 3.3, C6): the
payload's token ids and draft proposals, and whether ``prov`` can describe them.

Used by :class:`~auditlog.ledger.chain.ChainChecker`. The payload decoder has a fast path: the
recorder's payloads are the canonical JSON ``{"drafts": [...], "token_ids": [...]}``, decoded into
a typed :class:`msgspec.Struct` and taken only if re-encoding it gives back the stored bytes (then
``orjson.loads`` reads exactly the same two lists); anything else is read with orjson.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
import orjson

from auditlog.ledger.canonical import MAX_SAFE_INTEGER
from auditlog.ledger.header_fast import DECODE_ERRORS

__all__ = ["TokensPayload", "prov_problem", "read_tokens_payload"]

_TARGET: Final = "target"
_ACCEPTED: Final = "draft_accepted"
_RECOVERED: Final = "target_recovered"

_INT_TYPE: Final = frozenset({int})
_SafeInt = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]

#: (token ids, draft proposals) of a readable payload; (None, None) when absent or ciphertext.
TokensPayload = tuple[list[int] | None, list[int] | None]


class _CanonicalPayload(msgspec.Struct, gc=False):
    """A tokens payload as the recorder writes it; fields in the canonical key order."""

    drafts: list[_SafeInt]
    token_ids: list[_SafeInt]


_decode_payload = msgspec.json.Decoder(_CanonicalPayload).decode
_encode = msgspec.json.Encoder().encode


def read_tokens_payload(payload: bytes, n: int) -> TokensPayload | None:
    """The payload's (token ids, drafts); (None, None) when it is not JSON (ciphertext); None
    when it is JSON but not ``n`` token ids and a list of draft proposals (a finding)."""
    fast = _canonical_payload(payload, n)
    return _read_json(payload, n) if fast is None else fast


def _canonical_payload(payload: bytes, n: int) -> TokensPayload | None:
    """The fast path of :func:`read_tokens_payload`; None means "not sure"."""
    try:
        fast = _decode_payload(payload)
    except DECODE_ERRORS:  # RecursionError: deep nesting in a field it skips (orjson refuses)
        return None
    if len(fast.token_ids) != n or _encode(fast) != payload:
        return None
    return fast.token_ids, fast.drafts


def _read_json(payload: bytes, n: int) -> TokensPayload | None:
    """:func:`read_tokens_payload` without its fast path."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None, None  # not plaintext JSON: an encrypted payload (digest checked)
    if type(body) is dict:
        token_ids, drafts = body.get("token_ids"), body.get("drafts")
        if (
            type(token_ids) is list
            and type(drafts) is list
            and len(token_ids) == n
            and set(map(type, token_ids + drafts)) <= _INT_TYPE  # in C; bool is refused
        ):
            return token_ids, drafts
    return None


def prov_problem(
    prov: list[str], token_ids: list[int] | None, drafts: list[int] | None
) -> str | None:
    """Why ``prov`` cannot describe this step (None when it can): all ``target`` (then no draft
    was proposed), or ``draft_accepted`` k times followed by at most one ``target_recovered`` or
    ``bonus``, with the k accepted tokens equal to the first k of at least k proposals and
    ``target_recovered`` only after a rejected proposal."""
    size = len(prov)
    num_target = prov.count(_TARGET)
    if num_target:
        if num_target != size:
            return f"prov mixes target with speculative codes: {prov}"
        if drafts:
            return f"prov is all target while {len(drafts)} draft tokens were proposed"
        return None
    # draft_accepted k times then at most one other code: k == size, or k == size - 1 with the
    # other code last
    accepted = prov.count(_ACCEPTED)
    if size - accepted > 1 or (accepted != size and prov[-1] == _ACCEPTED):
        return f"prov must be draft_accepted tokens then at most one final token: {prov}"
    if not drafts or token_ids is None:
        # payload unreadable, or no proposals recorded (an engine that reports acceptance
        # counts but not the draft tokens, e.g. vLLM): only the shape of prov is checked
        return None
    if accepted > len(drafts):
        return f"{accepted} draft tokens accepted, {len(drafts)} proposed"
    if token_ids[:accepted] != drafts[:accepted]:
        return "accepted tokens differ from the draft proposals"
    if accepted >= len(drafts) and size == accepted + 1 and prov[-1] == _RECOVERED:
        return "target_recovered but no proposal was rejected"
    return None
