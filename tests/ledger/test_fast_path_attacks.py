"""Attacks on the verifier's fast paths (header_fast, tokens_rules, chain, merkle_tree; C1, C6).

Each case is a stored form an attacker could write: the fast paths must take only what the full
checks take, parse it to the same values (same types, same key order), and never raise anything
but ``FormatError`` on hostile bytes (``verify_log`` never raises on bad data). The full checks
are called directly (``_parse_full``, ``_read_json``); the pre-change provenance rule and the
recursive RFC 9162 tree hash are the references for the chain and Merkle changes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_helpers import VECTORS

from auditlog.errors import FormatError
from auditlog.ledger import header_fast, header_parse, tokens_rules
from auditlog.ledger.hashes import leaf_hash
from auditlog.ledger.merkle_tree import MemoryNodeSource, MerkleFrontier, naive_root, root_hash

MAX = 2**53 - 1
TOKENS = {
    "kind": "tokens", "log": "l", "n": 2, "payload": "b" * 64, "prev": "a" * 64,
    "prov": ["draft_accepted", "bonus"], "req_seq": 3, "request_id": "r", "seq": 7, "step": 1,
    "tenant": "t", "ts": "1700000000000000000", "v": 1,
}  # fmt: skip
STEP = {
    "batch": [["r", 2], ["s", 0]], "kind": "step", "log": "l", "n": 2, "passes": 1,
    "payload": None, "prev": None, "req_seq": None, "request_id": None, "seq": 8, "step": 1,
    "ts": "1700000000000000000", "v": 1,
}  # fmt: skip
INT_FIELDS = {
    "tokens": ("n", "req_seq", "seq", "step", "v"),
    "step": ("n", "passes", "seq", "step", "v"),
}
ODD_NUMBERS = [b"null", b"true", b"false", b"-0", b"1.0", b"1e0", b"01", b"NaN", b"Infinity",
               b"-Infinity", b"9007199254740992", b"18446744073709551616", b"1" + b"0" * 40,
               b'"1"', b"[]", b"{}"]  # fmt: skip
#: Strings int() reads as a number, though only plain ASCII decimals are valid (FORMAT.md 3.1).
ODD_TS = ["٣", "1_000", " 12", "12 ", "\t1", "1\n", "+1", "0012", "-0", "-1", "０", "𝟏", "1e3",
          "0x10", "1" * 21, "", "١٢٣"]  # fmt: skip
#: Strings bytes.fromhex reads, though a digest is 64 lowercase hex digits.
ODD_HEX = ["A" * 64, "aB" * 32, "aa " * 21 + "a", " " + "a" * 63, "a" * 63 + "\n", "a" * 62 + "\ta",
           "ａ" * 64, "٣" * 64, "0" * 64]  # fmt: skip
#: Bytes that are not UTF-8: a lone byte, a surrogate, an overlong NUL, a cut sequence, > U+10FFFF.
NOT_UTF8 = [b"\xff", b"\xed\xa0\x80", b"\xc0\x80", b"\xc3", b"\xf4\x90\x80\x80"]


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _outcome(parse: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "ok", parse(body)
    except FormatError:
        return "refused", None


def _typed(value: Any) -> Any:
    """``value`` with the exact type of every part (True == 1 and a str subclass compare equal)."""
    if type(value) is dict:
        return [(k, type(k), _typed(v)) for k, v in value.items()]
    if type(value) is list:
        return [_typed(v) for v in value]
    return (type(value), value)


def _agree(body: bytes) -> tuple[str, Any]:
    """The fast path takes ``body`` only as the full checks do; parse_header decides the same."""
    full = _outcome(header_parse._parse_full, body)
    fast = header_fast.plain_header(body)
    if fast is not None:
        assert full[0] == "ok", body
        assert _typed(fast) == _typed(full[1]), body
    via = _outcome(header_parse.parse_header, body)
    assert via[0] == full[0], body
    assert _typed(via[1]) == _typed(full[1]), body
    return full


@pytest.mark.parametrize("header", [TOKENS, STEP], ids=["tokens", "step"])
def test_the_valid_forms_take_the_fast_path(header: dict[str, Any]) -> None:
    body = _dumps(header)
    assert header_fast.plain_header(body) is not None
    assert _agree(body)[0] == "ok"


@pytest.mark.parametrize("header", [TOKENS, STEP], ids=["tokens", "step"])
@pytest.mark.parametrize("bad", NOT_UTF8)
def test_invalid_utf8_is_a_format_error_not_a_crash(header: dict[str, Any], bad: bytes) -> None:
    """msgspec raises UnicodeDecodeError (not DecodeError) on these: the step fast path let it
    escape parse_header, and the verifier stopped on a step manifest an attacker wrote."""
    body = _dumps(header)
    positions = [i + 1 for i in range(len(body)) if body[i : i + 1] == b'"']
    for at in positions:  # inside every key and string value, at its first character
        form = body[:at] + bad + body[at:]
        assert header_fast.plain_header(form) is None
        assert _agree(form)[0] == "refused"


@pytest.mark.parametrize("header", [TOKENS, STEP], ids=["tokens", "step"])
def test_odd_numbers_nulls_and_duplicates(header: dict[str, Any]) -> None:
    body = _dumps(header)
    for name in INT_FIELDS[header["kind"]]:
        key = f'"{name}":'.encode()
        old = key + str(header[name]).encode()
        for odd in ODD_NUMBERS:
            for form in (key + odd, old + b"," + key + odd, key + odd + b"," + old):
                outcome = _agree(body.replace(old, form, 1))[0]
                # passes may hold any canonical value in a header: the chain checker reports it
                assert outcome == "refused" or (name == "passes" and form == key + odd), form
    for name, value in header.items():  # null, or a duplicate of the same value, for each field
        old = _dumps({name: value})[1:-1]
        null = _agree(body.replace(old, f'"{name}":null'.encode(), 1))
        nullable = value is None or name in ("passes", "payload")  # passes: any JSON value
        assert null[0] == ("ok" if nullable else "refused"), name
        assert _agree(body.replace(old, old + b"," + old, 1))[0] == "refused"


@pytest.mark.parametrize("header", [TOKENS, STEP], ids=["tokens", "step"])
def test_framing_bom_whitespace_and_trailing_data(header: dict[str, Any]) -> None:
    body = _dumps(header)
    for form in (b"\xef\xbb\xbf" + body, b" " + body, body + b" ", body + b"\n", body + b"\x00",
                 body + b"{}", body + body, body[:-1], body.replace(b",", b", ", 1),
                 body.replace(b":", b" :", 1), body.replace(b'"l"', b'"\\u006c"'),
                 body.replace(b'"l"', b'"l\\/"'), b"[" + body + b"]"):  # fmt: skip
        assert _agree(form)[0] == "refused", form


@pytest.mark.parametrize("name", ["ts", "prev", "payload"])
def test_time_and_digest_forms_that_int_and_fromhex_read(name: str) -> None:
    for value in ODD_TS if name == "ts" else ODD_HEX:
        if name == "payload" and value == "0" * 64:
            continue  # a zero digest is a valid payload digest
        assert _agree(_dumps({**TOKENS, name: value}))[0] == "refused", (name, value)
    for value in ODD_TS:
        assert _agree(_dumps({**STEP, "ts": value}))[0] == "refused", value


def test_step_batches() -> None:
    for batch in ([["r", True]], [["r", -1]], [["r", MAX + 1]], [[1, "r"]], [["r"]],
                  [["r", 1, 2]], [["r", 1], ["r", 1]], [["r", 1.0]], [["r", None]], [[None, 1]],
                  [{"r": 1}], ["r"], [], [["", 0]], [["é\U0001f600", 1]]):  # fmt: skip
        n = sum(e[1] for e in batch if type(e) is list and len(e) == 2 and type(e[1]) is int)
        _agree(_dumps({**STEP, "batch": batch, "n": n}))


def test_the_encoder_escapes_every_character_as_orjson_does() -> None:
    """The re-encoding check relies on it: one encoder output for each string, RFC 8785's."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for i in range(0, len(chars), 4096):
        text = "".join(chars[i : i + 4096])
        assert msgspec.json.encode(text) == orjson.dumps(text)


def _mutations(body: bytes) -> st.SearchStrategy[bytes]:
    """``body`` with bytes replaced, inserted or deleted at random places."""
    edit = st.tuples(st.integers(0, len(body)), st.integers(0, 2), st.binary(max_size=3))

    def apply(edits: list[tuple[int, int, bytes]]) -> bytes:
        out = body
        for at, cut, new in edits:
            out = out[:at] + new + out[at + cut :]
        return out

    return st.lists(edit, min_size=1, max_size=3).map(apply)


@settings(max_examples=1500, deadline=None)
@given(body=_mutations(_dumps(TOKENS)) | _mutations(_dumps(STEP)))
def test_random_byte_edits_never_crash_and_agree(body: bytes) -> None:
    _agree(body)


PAYLOAD = b'{"drafts":[4,5],"token_ids":[4,9]}'


@pytest.mark.parametrize("depth", [10, 500, 1000, 5000, 100_000])
def test_deep_nesting_in_a_payload_is_not_a_crash(depth: int) -> None:
    """msgspec skips an unknown field recursively and raises RecursionError on deep nesting:
    the payload fast path let it escape the chain checker on a payload an attacker wrote."""
    for nested in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        for form in (
            b'{"x":' + nested + b"," + PAYLOAD[1:],
            PAYLOAD[:-1] + b',"z":' + nested + b"}",
        ):
            assert tokens_rules._canonical_payload(form, 2) is None
            assert tokens_rules.read_tokens_payload(form, 2) == tokens_rules._read_json(form, 2)


@settings(max_examples=1000, deadline=None)
@given(body=_mutations(PAYLOAD), n=st.integers(0, 3))
def test_payload_byte_edits_agree_with_orjson(body: bytes, n: int) -> None:
    fast = tokens_rules._canonical_payload(body, n)
    full = tokens_rules._read_json(body, n)
    if fast is not None:
        assert _typed(list(fast)) == _typed(list(full or ()))
    assert tokens_rules.read_tokens_payload(body, n) == full


def test_payload_values_keep_their_types() -> None:
    for body, n in ((b'{"drafts":[true],"token_ids":[1]}', 1),
                    (b'{"drafts":[],"token_ids":[-0]}', 1),
                    (b'{"drafts":[],"token_ids":[9007199254740992]}', 1),
                    (b'{"drafts":[],"token_ids":[1.0]}', 1), (b'{"drafts":null,"token_ids":[]}', 0),
                    (b'\xef\xbb\xbf{"drafts":[],"token_ids":[]}', 0)):  # fmt: skip
        assert tokens_rules._canonical_payload(body, n) is None
        assert tokens_rules.read_tokens_payload(body, n) == tokens_rules._read_json(body, n)


def _prov_problem_before(prov: list[str], ids: list[int] | None, drafts: list[int] | None) -> Any:
    """The provenance rule as it was before the fast paths (the reference)."""
    num_target = prov.count("target")
    if num_target:
        if num_target != len(prov):
            return f"prov mixes target with speculative codes: {prov}"
        if drafts:
            return f"prov is all target while {len(drafts)} draft tokens were proposed"
        return None
    accepted = 0
    while accepted < len(prov) and prov[accepted] == "draft_accepted":
        accepted += 1
    rest = prov[accepted:]
    if len(rest) > 1 or "draft_accepted" in rest:
        return f"prov must be draft_accepted tokens then at most one final token: {prov}"
    if not drafts or ids is None:
        return None
    if accepted > len(drafts):
        return f"{accepted} draft tokens accepted, {len(drafts)} proposed"
    if ids[:accepted] != drafts[:accepted]:
        return "accepted tokens differ from the draft proposals"
    if rest == ["target_recovered"] and accepted >= len(drafts):
        return "target_recovered but no proposal was rejected"
    return None


@settings(max_examples=3000, deadline=None)
@given(
    prov=st.lists(
        st.sampled_from(["target", "draft_accepted", "target_recovered", "bonus"]), max_size=6
    ),
    ids=st.none() | st.lists(st.integers(0, 2), max_size=6),
    drafts=st.none() | st.lists(st.integers(0, 2), max_size=6),
)
def test_the_provenance_rule_is_unchanged(
    prov: list[str], ids: list[int] | None, drafts: list[int] | None
) -> None:
    assert tokens_rules.prov_problem(prov, ids, drafts) == _prov_problem_before(prov, ids, drafts)


def _leaves(count: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(count)]


def test_frontier_root_and_nodes_at_every_size_to_300() -> None:
    """The early return at odd sizes: the root after every append, and the persisted nodes
    (through root_hash over a node store), equal the recursive definition."""
    leaves = _leaves(300)
    frontier, source = MerkleFrontier(), MemoryNodeSource()
    assert frontier.root() == naive_root([])
    for size, leaf in enumerate(leaves, start=1):
        frontier.append(leaf)
        source.append(leaf)
        want = naive_root(leaves[:size])
        assert frontier.size == size
        assert frontier.root() == want == root_hash(size, source), size
        assert MerkleFrontier.from_subtrees(frontier.subtrees()).root() == want


def test_frontier_root_at_random_sizes() -> None:
    rng = random.Random(9162)
    for size in [rng.randrange(300, 5000) for _ in range(6)] + [511, 512, 513, 4095, 4096, 4097]:
        leaves = _leaves(size)
        frontier = MerkleFrontier()
        for leaf in leaves:
            frontier.append(leaf)
        assert frontier.root() == naive_root(leaves), size


#: The leaves of the published RFC 9162 vectors (transparency-dev/merkle testonly).
VECTOR_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243",
                 "5051525354555657", "606162636465666768696a6b6c6d6e6f")]  # fmt: skip


def test_frontier_roots_match_the_published_vectors() -> None:
    roots: dict[int, bytes] = {}
    for path in sorted((VECTORS / "rfc9162").rglob("happy-path.json")):
        case = json.loads(path.read_text())
        pairs = [("treeSize", "root"), ("size1", "root1"), ("size2", "root2")]
        for size, root in pairs:
            if size in case and case[size] <= len(VECTOR_LEAVES):
                roots[case[size]] = base64.b64decode(case[root])
    assert len(roots) >= 5
    frontier = MerkleFrontier()
    for size, data in enumerate(VECTOR_LEAVES, start=1):
        frontier.append(leaf_hash(data))
        if size in roots:
            assert frontier.root() == roots[size], size
