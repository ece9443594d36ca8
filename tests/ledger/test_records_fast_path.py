"""The verifier's fast path for ``tokens`` headers accepts nothing the full checks refuse (C1, C6).

:func:`~auditlog.ledger.header_parse.parse_header` first tries a typed msgspec decoding of a plain
``tokens`` header, taken only when re-encoding gives back the stored bytes; whatever it is unsure
of goes through the full checks. Every header drawn here, valid or not, must get the same answer
with the fast path as without it, and whatever the fast path takes, the full checks take too,
with the same result (tests/ledger/test_fast_path_forms.py: byte-level forms, and payloads).
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.errors import FormatError
from auditlog.ledger import header_fast, header_parse
from auditlog.ledger.records import ZERO_HASH, parse_header

HEX = "ab" * 32
VALID: dict[str, Any] = {
    "v": 1, "log": "log.example/1", "seq": 7, "kind": "tokens", "request_id": "req-1",
    "req_seq": 1, "ts": "1767225600123456789", "prev": HEX, "payload": HEX,
    "tenant": "t", "step": 3, "n": 2, "prov": ["draft_accepted", "bonus"],
}  # fmt: skip
ODD: list[Any] = [None, True, False, 0, 1, -1, 2**53, 2**53 - 1, 1.5, "", "x", "0", "01",
                  "12", HEX, HEX.upper(), ZERO_HASH, [], ["target"], ["target", "bonus"],
                  ["nope", "target"], [1, 2], {}, {"a": 1}, "é"]  # fmt: skip


def _answer(body: bytes, parse: Any = parse_header) -> tuple[str, Any]:
    try:
        return "ok", parse(body)
    except FormatError as exc:
        return "refused", str(exc)


def _full(body: bytes) -> tuple[str, Any]:
    return _answer(body, header_parse._parse_full)


@settings(max_examples=600, deadline=None)
@given(
    changes=st.dictionaries(
        st.sampled_from([*VALID, "extra", "é"]), st.sampled_from(ODD), max_size=3
    ),
    drop=st.sets(st.sampled_from(list(VALID)), max_size=1),
)
def test_fast_path_agrees_with_the_full_checks(changes: dict[str, Any], drop: set[str]) -> None:
    header = {k: v for k, v in {**VALID, **changes}.items() if k not in drop}
    body = orjson.dumps(header, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    fast, full = _answer(body), _full(body)
    assert fast[0] == full[0], (header, fast, full)
    if fast[0] == "ok":
        assert fast[1] == full[1]
        assert list(map(type, fast[1].values())) == list(map(type, full[1].values()))


def test_fast_path_takes_the_recorders_headers() -> None:
    body = orjson.dumps(VALID, option=orjson.OPT_SORT_KEYS)
    assert body == orjson.dumps(
        parse_header(body) | {"ts": VALID["ts"]}, option=orjson.OPT_SORT_KEYS
    )
    assert header_fast._plain_tokens(body) == header_parse._parse_full(body)


def _byte_forms(body: bytes) -> list[bytes]:
    """The same header written other ways: each is a forgery vector if only one path takes it."""
    text = body.decode()
    forms = [
        text.replace(",", ", "), text.replace(":", ": "), " " + text, text + "\n",
        "\ufeff" + text, text.replace('"seq":7', '"seq":7.0'), text.replace('"seq":7', '"seq":7e0'),
        text.replace('"seq":7', '"seq":07'), text.replace('"n":2', '"n":2,"n":2'),
        text.replace('"n":2', '"n":3,"n":2'), text.replace('"step":3', '"step":-0'),
        text.replace('"tenant":"t"', '"tenant":"\\u0074"'), text.replace('"t"', '"\\u00e9"'),
        text.replace('"tenant":"t"', '"tenant":"é"'), text.replace('"v":1,', "") + "",
        text.replace('"kind":"tokens"', '"kind":"tok\\u0065ns"'),
        text.replace('"kind":"tokens"', '"k\\u0069nd":"tokens"'),
        text.replace('"log":"log.example/1","n":2', '"n":2,"log":"log.example/1"'),
        text.replace('"prov":["draft_accepted","bonus"]', '"prov":["draft_accepted", "bonus"]'),
        text.replace("/", "\\/"), text.replace('"req_seq":1', '"req_seq":1,"req_seq":1'),
        text[:-1] + ',"extra":1}', text[:-1] + ',"v":1}',
    ]  # fmt: skip
    return [f.encode() for f in forms if f != text]


def test_fast_path_agrees_on_other_byte_forms() -> None:
    """Whitespace, duplicate keys, key order, unicode escapes, non-canonical numbers, a BOM:
    the fast path refuses exactly what the full checks refuse (all but the raw UTF-8 tenant)."""
    body = orjson.dumps(VALID, option=orjson.OPT_SORT_KEYS)
    forms = _byte_forms(body)
    assert len(forms) >= 20
    for form in forms:
        fast, full = _answer(form), _full(form)
        assert fast[0] == full[0], (form, fast, full)
        assert fast[0] == "refused" or form == body.replace(b'"t"', '"é"'.encode()), form
