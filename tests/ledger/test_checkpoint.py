"""C2SP tlog-checkpoint bodies and signed checkpoints (C10, C12)."""

from __future__ import annotations

import pytest

from auditlog.errors import FormatError, VerificationError
from auditlog.ledger.checkpoint import (
    Checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from auditlog.ledger.note import Signer

ROOT = bytes(range(32))
B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
SIGNER = Signer(name="log.example/1", seed=b"\x07" * 32)


def test_body_bytes() -> None:
    cp = Checkpoint(origin="log.example/1", size=42, root=ROOT)
    assert cp.body() == f"log.example/1\n42\n{B64}\n"
    assert parse_checkpoint(cp.body()) == cp


def test_extension_lines_are_preserved() -> None:
    text = f"log.example/1\n42\n{B64}\nx-ext one\nx-ext two\n"
    cp = parse_checkpoint(text)
    assert cp.extensions == ("x-ext one", "x-ext two") and cp.body() == text


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (f"log\n42\n{B64}", "end with a newline"),
        ("log\n42\n", "origin, size and root"),
        (f"\n42\n{B64}\n", "origin line is empty"),
        (f"log\n042\n{B64}\n", "not a decimal"),
        (f"log\n-1\n{B64}\n", "not a decimal"),
        (f"log\n+1\n{B64}\n", "not a decimal"),
        ("log\n1\nAAAA\n", "32 bytes"),
        (f"log\n1\n{B64[:-1]}\n", "base64"),
        (f"log\n1\n{B64}\n\n", "extension lines must not be empty"),
    ],
)
def test_strict_parsing(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        parse_checkpoint(text)


def test_sign_and_open() -> None:
    cp = Checkpoint(origin="log.example/1", size=7, root=ROOT)
    note = sign_checkpoint(cp, [SIGNER])
    assert open_checkpoint(note, [SIGNER.verifier], origin="log.example/1") == cp
    with pytest.raises(VerificationError, match="checkpoint origin: expected 'other'"):
        open_checkpoint(note, [SIGNER.verifier], origin="other")
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        open_checkpoint(note, [Signer.generate("log.example/1").verifier])
    forged = note.replace("\n7\n", "\n8\n", 1)
    with pytest.raises(VerificationError, match="bad signature"):
        open_checkpoint(forged, [SIGNER.verifier])
