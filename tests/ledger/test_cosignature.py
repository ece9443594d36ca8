"""cosignature/v1 (C2SP tlog-cosignature) and witness policies: parsing, verification, quorum.

Interoperability with a third-party witness is tested in tests/witnesses/; these tests pin the
format rules and play an attacker against the pure check (C10)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditlog.errors import FormatError
from auditlog.ledger.cosignature import (
    COSIGNATURE_TYPE,
    Cosignature,
    CosignerKey,
    cosignature_key_id,
    cosignature_message,
    parse_cosignature_line,
)
from auditlog.ledger.witness_policy import WitnessPolicy
from auditlog.ledger.witnessed import WitnessFindingCode, check_witnessed

BODY = "test.example/log\n5\n" + base64.b64encode(b"\x07" * 32).decode() + "\n"


class Cosigner:
    """A test witness: signs cosignature/v1 exactly as the spec says."""

    def __init__(self, name: str) -> None:
        self.private = Ed25519PrivateKey.generate()
        public = self.private.public_key().public_bytes_raw()
        kid = cosignature_key_id(name, public)
        b64 = base64.b64encode(COSIGNATURE_TYPE + public).decode()
        self.vkey = f"{name}+{kid.hex()}+{b64}"
        self.key = CosignerKey.from_key_string(self.vkey)

    def cosign(self, body: str, timestamp: int = 1_700_000_000) -> Cosignature:
        signature = self.private.sign(cosignature_message(timestamp, body))
        return Cosignature(self.key.name, self.key.key_id, timestamp, signature)


def test_message_layout() -> None:
    assert cosignature_message(42, BODY) == b"cosignature/v1\ntime 42\n" + BODY.encode()


def test_line_round_trip_and_verify() -> None:
    w = Cosigner("witness.example/w1")
    cosig = w.cosign(BODY)
    parsed = parse_cosignature_line(cosig.line)
    assert parsed == cosig
    assert w.key.verify(parsed, BODY)
    assert not w.key.verify(parsed, BODY.replace("\n5\n", "\n6\n"))  # another checkpoint
    later = Cosignature(cosig.name, cosig.key_id, cosig.timestamp + 1, cosig.signature)
    assert not w.key.verify(later, BODY)  # another time
    assert CosignerKey.from_key_string(w.key.key_string) == w.key


@pytest.mark.parametrize(
    "mutate",
    [
        lambda v: v.replace("+", "+0", 1),  # key id of 9 digits
        lambda v: v.split("+")[0] + "+00000000+" + v.split("+", 2)[2],  # wrong key id
        lambda v: v[: v.rindex("+") + 1] + base64.b64encode(b"\x01" + b"\x00" * 32).decode(),
    ],
)
def test_bad_witness_keys_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FormatError):
        CosignerKey.from_key_string(mutate(Cosigner("w").vkey))


def test_log_signature_line_is_not_a_cosignature() -> None:
    short = "\u2014 w " + base64.b64encode(b"\x00" * 68).decode()
    with pytest.raises(FormatError, match="is 76 bytes"):
        parse_cosignature_line(short)


def test_nested_groups_quorum() -> None:
    ws = {n: Cosigner(f"witness.example/{n}") for n in ("a1", "a2", "a3", "b1", "b2")}
    text = "\n".join(
        [f"witness {n} {w.vkey} https://{n}.example" for n, w in ws.items()]
        + [
            "# two of the A operators and any B operator",
            "group A 2 a1 a2 a3",
            "group B any b1 b2",
            "group AB all A B",
            "quorum AB",
        ]
    )
    policy = WitnessPolicy.parse(text)
    assert policy.satisfied({"a1", "a3", "b2"})
    assert not policy.satisfied({"a1", "a2", "a3"})
    assert not policy.satisfied({"a1", "b1", "b2"})
    assert policy.witnesses["a1"].url == "https://a1.example"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no 'quorum'"),
        ("quorum none", "proves nothing"),
        ("quorum x", "not defined"),
        ("group g 1 x\nquorum g", "not defined above"),
        ("frob\nquorum x", "unknown statement"),
    ],
)
def test_bad_policies_are_refused(text: str, error: str) -> None:
    with pytest.raises(FormatError, match=error):
        WitnessPolicy.parse(text)


def test_bad_threshold_and_duplicate_names_are_refused() -> None:
    w = Cosigner("w")
    with pytest.raises(FormatError, match="threshold"):
        WitnessPolicy.parse(f"witness a {w.vkey}\ngroup g 2 a\nquorum g")
    with pytest.raises(FormatError, match="defined twice"):
        WitnessPolicy.parse(f"witness a {w.vkey}\nwitness a {w.vkey}\nquorum a")


def test_check_witnessed_plays_the_attacker() -> None:
    """C10: a stored cosignature that does not verify fails; one by an unknown key is ignored;
    a cosignature of a checkpoint the log does not hold fails; coverage is of the latest size."""
    a, b, stranger = Cosigner("wa"), Cosigner("wb"), Cosigner("wc")
    policy = WitnessPolicy.all_of([a.key, b.key])
    body3 = BODY.replace("\n5\n", "\n3\n")
    checkpoints = {3: body3, 5: BODY}
    good = {3: [a.cosign(body3), b.cosign(body3)], 5: [a.cosign(BODY), b.cosign(BODY)]}
    assert check_witnessed("test.example/log", 5, checkpoints, good, policy) == ([], 5)

    # Only size 3 witnessed, the stranger's cosignature of 5 does not help: unproven.
    partial = {3: good[3], 5: [a.cosign(BODY), stranger.cosign(BODY)]}
    findings, witnessed = check_witnessed("test.example/log", 5, checkpoints, partial, policy)
    assert witnessed == 3 and [f.code for f in findings] == [WitnessFindingCode.WITNESS_UNCOVERED]
    assert not findings[0].failed

    # b's cosignature of 3 moved onto 5: fails.
    moved = {3: good[3], 5: [a.cosign(BODY), good[3][1]]}
    findings, _ = check_witnessed("test.example/log", 5, checkpoints, moved, policy)
    assert [f.code for f in findings if f.failed] == [WitnessFindingCode.COSIGNATURE_INVALID]

    # A cosignature kept for a checkpoint that is no longer there (the log was cut back).
    findings, _ = check_witnessed("test.example/log", 3, {3: body3}, good, policy)
    assert [f.code for f in findings] == [WitnessFindingCode.COSIGNATURE_ORPHAN]
