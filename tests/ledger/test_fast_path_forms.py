"""The verifier's msgspec fast paths against its full checks, on byte forms (C1, C6).

A fast path may only take bytes the full checks take, with the identical result; everything else
must be left to the full checks. Headers and payloads are drawn as canonical JSON of generated
values (any text: controls, quotes, backslashes, non-ASCII, characters above U+FFFF), then edited
at the byte level: escapes that are not needed (``\\u0041``, surrogate pairs, ``\\/``), duplicate
keys, whitespace, key order, non-canonical numbers (``1.0``, ``1e0``, ``-0``, ``01``), integers
out of range, a BOM.
"""

from __future__ import annotations

from typing import Any, get_args

import msgspec
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.errors import FormatError
from auditlog.ledger import header_fast, header_parse, tokens_rules
from auditlog.ledger.header_checks import _KIND_RULES
from auditlog.ledger.record_format import PROVENANCE_CODES, RecordKind

MAX = 2**53 - 1
HEX = st.text("0123456789abcdef", min_size=64, max_size=64)
TEXT = st.text(max_size=6) | st.sampled_from(["t", "é", "\U0001f600", "a/b", '"', "\\", "\x00"])
ODD_COUNT = st.sampled_from([MAX, MAX + 1, -1, 2**64, True])
ODD_TS_VALUES = [
    "01", "", "1" * 21, "12a", "-1", "-0", "+1", " 1", "1 ", "1_0", "１", "١", "0x1"
]  # fmt: skip
ODD_TS = st.sampled_from(ODD_TS_VALUES)
#: Not 64 lowercase hex digits, though bytes.fromhex or int(..., 16) would read some of them.
ODD_HEX_VALUES = (
    ["0" * 64, "A" * 64, "a" * 63, "a" * 65, "ab " * 21 + "a", " " + "a" * 63, "0x" + "a" * 62,
     "a" * 62 + "_a", "ａ" * 64, "a" * 63 + "\n", None, 1]
)  # fmt: skip
ODD_HEX = st.sampled_from(ODD_HEX_VALUES)
CODES = sorted(PROVENANCE_CODES)


def _mostly(draw: st.DrawFn, valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
    """A valid value 19 times in 20, else an odd one (so most headers draw valid)."""
    return draw(odd if draw(st.integers(0, 19)) == 0 else valid)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, Any]:
    """A tokens header, valid more often than not (the odd values lie near the edges)."""
    prov = _mostly(draw, st.lists(st.sampled_from(CODES), max_size=4), st.just(["nope"]))
    count = st.integers(0, 3) | st.integers(MAX - 1, MAX)
    return {
        "v": _mostly(draw, st.just(1), st.sampled_from([2, True, 1.0])),
        "log": _mostly(draw, TEXT.filter(bool), st.sampled_from(["", None, 1])),
        "seq": _mostly(draw, count, ODD_COUNT),
        "kind": _mostly(draw, st.just("tokens"), st.sampled_from(["step", "Tokens"])),
        "request_id": _mostly(draw, TEXT.filter(bool), st.sampled_from(["", None])),
        "req_seq": _mostly(draw, count.filter(bool), st.sampled_from([0, MAX + 1, False])),
        "ts": _mostly(draw, st.integers(0, 10**20 - 1).map(str), ODD_TS),
        "prev": _mostly(draw, HEX, ODD_HEX),
        "payload": _mostly(draw, st.none() | HEX, ODD_HEX),
        "tenant": _mostly(draw, TEXT, st.sampled_from([None, 1, ["t"]])),
        "step": _mostly(draw, count, ODD_COUNT),
        "n": _mostly(draw, st.just(len(prov)), st.sampled_from([len(prov) + 1, -1])),
        "prov": prov,
    }


@st.composite
def steps(draw: st.DrawFn) -> dict[str, Any]:
    """A step manifest, valid more often than not."""
    pair = st.tuples(TEXT, st.integers(0, 3)).map(list)
    batch = _mostly(draw, st.lists(pair, max_size=4), st.sampled_from([[["a", 1], ["a", 1]], [[]]]))
    total = sum(entry[1] for entry in batch if len(entry) == 2)
    header = {
        "v": 1, "log": "l", "seq": _mostly(draw, st.integers(0, 3), ODD_COUNT), "kind": "step",
        "request_id": None, "req_seq": None, "prev": None, "payload": None,
        "ts": _mostly(draw, st.integers(0, 10**20 - 1).map(str), ODD_TS),
        "step": _mostly(draw, st.integers(0, 3), ODD_COUNT), "batch": batch,
        "n": _mostly(draw, st.just(total), st.sampled_from([total + 1, -1])),
        "passes": _mostly(draw, st.integers(0, 3), st.sampled_from([-1, None, "1", MAX + 1])),
        "tenant": _mostly(draw, st.none(), TEXT),
    }  # fmt: skip
    for name in ("request_id", "payload", "passes"):  # absent, or another value
        header[name] = _mostly(draw, st.just(header[name]), st.sampled_from([0, "x", "absent"]))
    return header


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


#: Byte-level edits: (old, new) replaced once, at the first occurrence.
EDITS = [
    (b",", b", "), (b":", b": "), (b"{", b" {"), (b"}", b"} "), (b"{", b"\xef\xbb\xbf{"),
    (b'"n":', b'"n":1,"n":'), (b'"v":1', b'"v":1,"v":1'), (b'"prov":', b'"prov":[],"prov":'),
    (b'"kind":"tokens",', b""), (b'"kind":"tokens",', b'"kind":"tokens","kind":"tokens",'),
    (b'"kind":"tokens","log"', b'"log"'), (b'"v":1}', b'"v":1,"kind":"tokens"}'),
    (b'"v":1', b'"v":1.0'), (b'"v":1', b'"v":1e0'), (b'"v":1', b'"v":01'),
    (b'"step":0', b'"step":-0'), (b'"n":0', b'"n":-0'), (b'"seq":', b'"seq":0'),
    (b'"req_seq":1', b'"req_seq":1.0'),
    (b"a", b"\\u0061"), (b"t", b"\\u0074"), (b"/", b"\\/"), (b"\xc3\xa9", b"\\u00e9"),
    (b"\xf0\x9f\x98\x80", b"\\ud83d\\ude00"), (b"\\u001f", b"\\u001F"), (b"\\n", b"\\u000a"),
    (b'"tenant":"', b'"tenant":"\\ud800'), (b'"}', b'","extra":null}'), (b"}", b',"x":1}'),
    (b'"batch":[', b'"batch":[["a",1],'), (b"]]", b"] ]"), (b'"passes":', b'"passes":1,"passes":'),
    (b'"passes":1', b'"passes":true'), (b"null", b"nul\\u006c"), (b'"prev":null', b'"prev":0'),
]  # fmt: skip


def _full(body: bytes) -> tuple[str, Any]:
    try:
        return "ok", header_parse._parse_full(body)
    except FormatError:
        return "refused", None


def _same(fast: dict[str, Any], full: dict[str, Any]) -> None:
    """Equal, with the same key order and the same types (True == 1 would hide a bool)."""
    assert list(fast.items()) == list(full.items())
    assert [type(v) for v in fast.values()] == [type(v) for v in full.values()]
    assert [list(map(type, v)) for v in fast.values() if type(v) is list] == [
        list(map(type, v)) for v in full.values() if type(v) is list
    ]


@settings(max_examples=1500, deadline=None)
@given(header=headers() | steps(), edits=st.just([]) | st.lists(st.sampled_from(EDITS), max_size=2))
def test_header_fast_path_takes_only_what_the_full_checks_take(
    header: dict[str, Any], edits: list[tuple[bytes, bytes]]
) -> None:
    for name in ("tenant", "request_id", "payload", "passes"):
        if header.get(name, "absent") == "absent" or (name == "tenant" and header[name] is None):
            header.pop(name, None)
    try:
        body = _dumps(header)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: written by hand
        body = orjson.dumps({k: str(v) for k, v in header.items()}, option=orjson.OPT_SORT_KEYS)
    for old, new in edits:
        body = body.replace(old, new, 1)
    fast = header_fast.plain_header(body)
    full = _full(body)
    if fast is not None:
        assert full[0] == "ok", body
        _same(fast, full[1])
    try:
        via_parse: tuple[str, Any] = ("ok", header_parse.parse_header(body))
    except FormatError:
        via_parse = ("refused", None)
    assert via_parse[0] == full[0]
    if full[0] == "ok":
        _same(via_parse[1], full[1])


ORIGINALS = (b'"seq":1', b"\\u001f", "é".encode(), "\U0001f600".encode(), b"\x7f")


def test_header_fast_path_takes_canonical_headers_with_escapes() -> None:
    """Controls, quotes, backslashes and non-ASCII in strings: the fast path takes them, and
    unneeded escapes or duplicate keys make both paths refuse."""
    header = {
        "v": 1, "log": 'l\x00g"\\\x1f\u2028é', "seq": 1, "kind": "tokens",
        "request_id": "\U0001f600", "req_seq": 1, "ts": "0", "prev": "a" * 64, "payload": None,
        "tenant": "\x7f", "step": 0, "n": 1, "prov": ["bonus"],
    }  # fmt: skip
    body = _dumps(header)
    fast = header_fast._plain_tokens(body)
    assert fast is not None
    _same(fast, _full(body)[1])
    forms = (b'"seq":1,"seq":1', b"\\u001F", b"\\u00e9", b"\\ud83d\\ude00", b"\\u007f")
    for form in (body.replace(old, new) for old, new in zip(ORIGINALS, forms, strict=True)):
        assert header_fast._plain_tokens(form) is None
        assert _full(form)[0] == "refused"


def test_the_fast_path_types_are_the_formats() -> None:
    struct = header_fast._PlainTokens
    assert set(get_args(header_fast._Provenance)) == PROVENANCE_CODES
    assert list(struct.__struct_fields__) == sorted(struct.__struct_fields__)  # canonical order
    assert set(struct.__struct_fields__) == _KIND_RULES[RecordKind.TOKENS][1]
    step = header_fast._PlainStep
    assert list(step.__struct_fields__) == sorted(step.__struct_fields__)
    payload = tokens_rules._CanonicalPayload
    assert list(payload.__struct_fields__) == sorted(payload.__struct_fields__)


INTS = st.one_of(
    st.integers(-3, 3), st.integers(MAX - 1, MAX + 1), st.sampled_from([-MAX - 1, 2**64])
)
ITEMS = st.lists(INTS | st.sampled_from([True, None, "1"]), max_size=4)
PAYLOAD_EDITS = [
    (b'"drafts":', b'"drafts":[],"drafts":'), (b'"token_ids":', b'"token_ids":[9],"token_ids":'),
    (b",", b", "), (b"1", b"1.0"), (b"1", b"1e0"), (b"0", b"-0"), (b'"drafts"', b'"dr\\u0061fts"'),
    (b"}", b',"x":1}'), (b"{", b'{"a":1,'), (b"]", b",]"), (b'"drafts":[', b'"drafts":[1e400,'),
]  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(
    payload=st.fixed_dictionaries(
        {"token_ids": ITEMS, "drafts": ITEMS}, optional={"extra": st.integers(0, 3)}
    ),
    n=st.integers(0, 4),
    edits=st.lists(st.sampled_from(PAYLOAD_EDITS), max_size=2),
)
def test_payload_fast_path_agrees_with_orjson(
    payload: dict[str, Any], n: int, edits: list[tuple[bytes, bytes]]
) -> None:
    try:
        body = _dumps(payload)
    except orjson.JSONEncodeError:
        body = _dumps(
            {k: [str(x) for x in v] if type(v) is list else v for k, v in payload.items()}
        )
    for old, new in edits:
        body = body.replace(old, new, 1)
    fast = tokens_rules._canonical_payload(body, n)
    full = tokens_rules._read_json(body, n)
    if fast is not None:
        assert fast == full
        assert full is not None and [list(map(type, x or [])) for x in fast] == [
            list(map(type, x or [])) for x in full
        ]
    assert tokens_rules.read_tokens_payload(body, n) == full


def test_payload_duplicate_keys() -> None:
    """msgspec and orjson both keep the last of duplicate keys; the fast path refuses them."""
    body = b'{"drafts":[1],"drafts":[2],"token_ids":[2]}'
    assert msgspec.json.decode(body) == orjson.loads(body) == {"drafts": [2], "token_ids": [2]}
    assert tokens_rules._canonical_payload(body, 1) is None
    assert tokens_rules.read_tokens_payload(body, 1) == ([2], [2])


def test_each_odd_digest_and_time_is_refused_by_both_paths() -> None:
    """Forms that bytes.fromhex or int() would read: neither path takes them."""
    valid = {
        "v": 1, "log": "l", "seq": 1, "kind": "tokens", "request_id": "r", "req_seq": 1,
        "ts": "5", "prev": "a" * 64, "payload": "b" * 64, "tenant": "t", "step": 0, "n": 0,
        "prov": [],
    }  # fmt: skip
    assert header_fast.plain_header(_dumps(valid)) is not None
    odd = [("prev", v) for v in ODD_HEX_VALUES]
    odd += [("payload", v) for v in ODD_HEX_VALUES if v not in (None, "0" * 64)]
    odd += [("ts", v) for v in ODD_TS_VALUES]
    for name, value in odd:
        body = _dumps({**valid, name: value})
        assert header_fast.plain_header(body) is None, (name, value)
        assert _full(body)[0] == "refused", (name, value)
