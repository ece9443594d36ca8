"""Canonical JSON equals RFC 8785 on the int/str subset (C7)."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from auditlog.errors import FormatError
from auditlog.ledger.canonical import MAX_SAFE_INTEGER, canonical_json

# Strings rich in what canonicalisers get wrong: controls, DEL, quotes, backslashes, U+2028/9,
# BOM, private use (U+E000..U+F8FF) and astral characters (UTF-16 surrogate pairs).
_tricky = st.sampled_from(
    [
        "\x00",
        "\x1f",
        "\x7f",
        '"',
        "\\",
        "/",
        "\u2028",
        "\u2029",
        "\ufeff",
        "\ue000",
        "\uffff",
        "\U0001f600",
        "\U00010000",
        "é",
        "\b",
        "\f",
        "\n",
        "\r",
        "\t",
    ]
)
_text = st.lists(st.one_of(_tricky, st.characters(blacklist_categories=("Cs",))), max_size=12).map(
    "".join
)
_ints = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), _ints, _text),
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(_text, children, max_size=5)
    ),
    max_leaves=25,
)


@given(_json)
@settings(max_examples=400, deadline=None)
def test_equals_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@given(st.dictionaries(_text, _ints, min_size=2, max_size=8))
@settings(max_examples=300, deadline=None)
def test_key_order_is_utf16_like_rfc8785(value: dict[str, int]) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_astral_key_sorts_before_private_use_key() -> None:
    # UTF-16: U+1F600 is D83D DE00 < E000; code point order would say the opposite.
    expected = '{"\U0001f600":2,"\ue000":1}'.encode()
    assert canonical_json({"\ue000": 1, "\U0001f600": 2}) == expected


def test_escapes_exactly_as_rfc8785() -> None:
    assert (
        canonical_json('\x00\x1f\x7f\b\t\n\f\r"\\/é')
        == b'"\\u0000\\u001f\x7f\\b\\t\\n\\f\\r\\"\\\\/\xc3\xa9"'
    )


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (1.5, "float at \\$"),
        ({"a": [1, {"b": 0.0}]}, r"float at \$\.a\[1\]\.b"),
        ({"x": float("nan")}, "float"),
        ({"x": float("inf")}, "float"),
        (MAX_SAFE_INTEGER + 1, "out of range"),
        ({"ts": -MAX_SAFE_INTEGER - 1}, r"out of range .* at \$\.ts"),
        ({1: "a"}, "key .* is int"),
        (b"bytes", "bytes"),
        ({"s": {1, 2}}, "set"),
        ("\ud800", "not canonical JSON"),
    ],
)
def test_refuses_outside_the_subset(value: Any, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        canonical_json(value)


def test_bounds_are_inclusive() -> None:
    assert (
        canonical_json([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER])
        == b"[9007199254740991,-9007199254740991]"
    )


def test_str_enum_is_written_as_its_value() -> None:
    from auditlog.ledger.records import RecordKind

    assert canonical_json({"kind": RecordKind.TOKENS}) == b'{"kind":"tokens"}'
