"""C2SP signed notes: Go sumdb/note vectors, several signers, strict parsing (C12)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from ledger_helpers import VECTORS

from auditlog.errors import FormatError, VerificationError
from auditlog.ledger.note import Signer, Verifier, key_id, open_note, sign_note, split_note

V: dict[str, Any] = json.loads((VECTORS / "signed-note" / "vectors.json").read_text())
TEXT: str = V["text"]
PETER = Verifier.from_key_string(V["verifier_keys"]["PeterNeumann"])
ENOCH = Verifier.from_key_string(V["verifier_keys"]["EnochRoot"])


def test_private_key_string_round_trips_and_matches_verifier() -> None:
    signer = Signer.from_key_string(V["signer_key_PeterNeumann"])
    assert signer.key_string == V["signer_key_PeterNeumann"]
    assert signer.verifier_key == V["verifier_keys"]["PeterNeumann"]
    assert signer.key_id == key_id("PeterNeumann", signer.public_key) == bytes.fromhex("c74f20a3")


def test_signing_reproduces_the_go_signature() -> None:
    signer = Signer.from_key_string(V["signer_key_PeterNeumann"])
    assert sign_note(TEXT, [signer]) == V["signed_note_PeterNeumann"]


def test_open_with_both_signatures_in_any_trust_set() -> None:
    note = TEXT + "\n" + V["signature_lines"]["PeterNeumann"] + V["signature_lines"]["EnochRoot"]
    opened = open_note(note, [PETER, ENOCH])
    assert opened.text == TEXT and opened.signed_by == (PETER, ENOCH)
    only_enoch = open_note(note, [ENOCH])
    assert only_enoch.signed_by == (ENOCH,)
    assert only_enoch.unknown_signers == ("PeterNeumann+c74f20a3",)


def test_no_trusted_signature_is_refused() -> None:
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        open_note(V["signed_note_PeterNeumann"], [ENOCH])


def test_bad_signature_by_a_trusted_key_is_refused() -> None:
    forged = V["signed_note_PeterNeumann"].replace("problem,", "problem;", 1)
    with pytest.raises(VerificationError, match="bad signature by trusted key PeterNeumann"):
        open_note(forged, [PETER])
    # same key id and name, other key: the signature does not verify
    impostor = Signer.generate("PeterNeumann")
    bad = TEXT + "\n" + sign_note(TEXT, [impostor]).split("\n\n", 1)[1]
    line = bad.split("\n")[-2]
    raw = base64.b64decode(line.split(" ")[-1])
    patched = line.rsplit(" ", 1)[0] + " " + base64.b64encode(PETER.key_id + raw[4:]).decode()
    with pytest.raises(VerificationError, match="bad signature"):
        open_note(TEXT + "\n" + patched + "\n", [PETER])


@pytest.mark.parametrize("case", V["must_reject"], ids=lambda c: c["why"])
def test_go_malformed_notes_are_refused(case: dict[str, str]) -> None:
    with pytest.raises(FormatError):
        open_note(case["note"], [PETER, ENOCH])


@pytest.mark.parametrize(
    ("note", "match"),
    [
        ("text\n\n- PeterNeumann AAAA\n", "does not start with '— '"),
        ("text\n\n—PeterNeumann AAAAAA==\n", "does not start"),
        ("text\n\n— Peter+Neumann AAAAAAAA\n", "invalid key name"),
        ("text\n\n— PeterNeumann\n", "has no signature"),
        ("text\n\n— PeterNeumann AAAA\n", "too short"),
        ("text\n\n— PeterNeumann AAAAAAB=\n", "not canonical base64"),
        ("\n\n— PeterNeumann AAAAAAAA\n", "non-empty|blank line"),
        ("a\n\nb\n\n— PeterNeumann AAAAAAAA\n", "blank line"),
        ("a\tb\n\n— PeterNeumann AAAAAAAA\n", "control characters"),
        ("text\n\n\n", "blank line|does not start"),
    ],
)
def test_strict_parsing(note: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        split_note(note)


@pytest.mark.parametrize("text", ["", "no newline", "blank\n\nline\n", "\nleading\n", "nul\x00\n"])
def test_sign_refuses_bad_text(text: str) -> None:
    with pytest.raises(FormatError):
        sign_note(text, [Signer.generate("k")])


@pytest.mark.parametrize(
    "key",
    [
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper-case hex
        "PeterNeumann+c74f20a3+AhpccccUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # algorithm 2
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_verifier_keys(key: str) -> None:
    with pytest.raises(FormatError):
        Verifier.from_key_string(key)


def test_generated_key_round_trip_and_several_signers() -> None:
    a, b = Signer.generate("log.example/a"), Signer.generate("witness.example")
    assert Signer.from_key_string(a.key_string).verifier_key == a.verifier_key
    note = sign_note("hello\nworld\n", [a, b])
    assert open_note(note, [Verifier.from_key_string(b.verifier_key)]).signed_by[0].name == (
        "witness.example"
    )
    assert "PRIVATE" not in repr(a)
