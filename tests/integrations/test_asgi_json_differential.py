"""Differential test of the middleware's request parser against the app's (issue 16, finding 3).

The same generated bodies go to ``asgi_request.loads_strict`` (what the middleware records) and
to stdlib ``json.loads`` on the bytes and Starlette's ``Request.json()`` (what the app runs).
On every body the middleware accepts, the three MUST agree exactly (types, values, key order);
on every other body the middleware MUST refuse cleanly (``Refused``, never another exception).
The response side's faster reader (``loads_answer``) is held to stdlib ``json`` the same way.
Bodies: JSON of generated values (NaN, infinities, huge integers, any text), re-encoded
(UTF-8 with and without BOM, UTF-16, UTF-32, Latin-1), with hostile fragments spliced in
(lone surrogate escapes, duplicate keys, ``1e400``, deep nesting) and raw bytes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.types import Message

from auditlog.gateway.openai_wire import canonical_json
from auditlog.integrations.asgi_request import MAX_DEPTH, Refused, loads_answer, loads_strict

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=16,
)  # fmt: skip
_FRAGMENTS = [
    '"\\ud800"', '"\\udfff x"', "1e400", "-1e999", "NaN", "Infinity", '"a": 1, "a": 2',
    "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2), "9" * 5000, "\ufeff", "\x00", "01", "1.",
    '"\\u0000"', '"\\uDBFF\\uDFFF"', "\u2028", '"\x1f"',
]  # fmt: skip
_ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1"]


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64))
    top = draw(st.dictionaries(st.text(max_size=8), _VALUES, max_size=5) | _VALUES)
    text = json.dumps(top, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(_FRAGMENTS)) + text[at:]
    encoding = draw(st.sampled_from(_ENCODINGS[:1] * 6 + _ENCODINGS))
    return text.encode(encoding, errors="surrogatepass" if "utf" in encoding else "replace")


def _same(a: Any, b: Any) -> bool:
    """Equal with equal types all the way down, dict key order included."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _starlette_json(raw: bytes) -> Any:
    """What a Starlette (or FastAPI) app reads from this body."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/completions", "headers": []}
    return asyncio.run(Request(scope, receive).json())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=bodies())
@example(raw=b'\xef\xbb\xbf{"prompt": "x"}')
@example(raw='{"prompt": "x"}'.encode("utf-16"))
@example(raw=b'{"prompt": "\xed\xa0\x80"}')
@example(raw=b'{"prompt": "x", "prompt": "y"}')
@example(raw=b'{"seed": 123456789012345678901234567890}')
def test_accepted_bodies_parse_as_the_app_parses_them(raw: bytes) -> None:
    try:
        ours = loads_strict(raw)
    except Refused as refused:
        assert refused.status == 400 and refused.code == "invalid_json"
        return
    theirs = json.loads(raw)
    assert _same(ours, theirs), (raw[:200], ours, theirs)
    assert _same(ours, _starlette_json(raw))
    recorded = json.loads(canonical_json(ours))  # what the trail keeps: integers exact
    assert not _contains_float(recorded), recorded


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=bodies())
@example(raw=b'{"created": 18446744073709551616, "a": -9223372036854775809}')
@example(raw=b'{"a": 1, "b": 2, "a": 3}')
@example(raw=b'{"k\\"": "v\\":", "a": {"b" : 1, "b": 2}}')
@example(raw=b'{"a": "\\\\", "b": ["x", {"c": 1}], "d" \n: "e:"}')
@example(raw=b'{"a": 1e-400, "b": 2.2250738585072011e-308, "c": 0.1e1}')
def test_answers_are_read_as_a_client_reads_them(raw: bytes) -> None:
    """The response side (``loads_answer``, orjson) agrees with stdlib ``json.loads`` (the
    openai client) on every answer it accepts; integers stay exact; an answer with a duplicate
    key is never accepted (its bytes carry a value no client reads)."""
    try:
        ours = loads_answer(raw)
    except Refused as refused:
        assert refused.code == "invalid_json"
        return
    assert _same(ours, json.loads(raw)), (raw[:200], ours)
    json.loads(raw, object_pairs_hook=_no_duplicate)  # a shadowed value would leave unrecorded


def _no_duplicate(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    assert len({k for k, _ in pairs}) == len(pairs), pairs
    return dict(pairs)


def _contains_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_contains_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_float(v) for v in value)
    return False
