"""Primitives of docs/FORMAT.md for the independent verifier, written from the document alone
(sections 2, 4 and 5): canonical JSON, the RFC 9162 tree hash, verifier keys and signed notes.
Standard library plus ``cryptography`` (Ed25519) only; nothing from the auditlog package."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAX_SAFE = 2**53 - 1
EM_DASH = "\u2014"


class FormatError(ValueError):
    """Bytes that FORMAT.md says a verifier MUST refuse."""


# --- section 2: canonical JSON -------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_ESCAPES["\r"] = "\\r"


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise FormatError("lone surrogate")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _utf16_key(name: str) -> list[int]:
    data = name.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def encode(value: Any) -> str:
    """RFC 8785 on the subset of section 2."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if abs(value) > MAX_SAFE:
            raise FormatError("integer outside ±(2^53 - 1)")
        return str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    if isinstance(value, dict):
        names = sorted(value, key=_utf16_key)
        return "{" + ",".join(_string(k) + ":" + encode(value[k]) for k in names) + "}"
    raise FormatError(f"not a value of section 2: {type(value).__name__}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise FormatError("duplicate member")
    return out


def _no_float(text: str) -> Any:
    raise FormatError(f"number {text} is not an integer")


def parse_canonical(data: bytes) -> Any:
    """Parse bytes and refuse them unless they re-encode to themselves (section 2, rule 3)."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_float,
        )
        again = encode(value).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise FormatError(str(exc)) from exc
    if again != data:
        raise FormatError("not canonical")
    return value


# --- section 4: hashes ---------------------------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(body: bytes) -> bytes:
    return sha256(b"\x00" + body)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 Merkle tree hash of leaf hashes."""
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


# --- section 5: keys and signed notes ------------------------------------------------------


def b64decode_canonical(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeError) as exc:
        raise FormatError("bad base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise FormatError("non-canonical base64")
    return raw


def key_id(name: str, alg: int, public: bytes) -> bytes:
    return sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public)[:4]


def parse_verifier_key(text: str) -> tuple[str, bytes, Ed25519PublicKey]:
    """``<name>+<8 hex id>+<base64(0x01 || key)>`` -> (name, key id, public key)."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise FormatError("verifier key has not three parts")
    name, hex_id, b64 = parts
    if not name or any(c.isspace() for c in name) or len(hex_id) != 8:
        raise FormatError("bad key name or id")
    if hex_id != hex_id.lower():
        raise FormatError("key id not lowercase hex")
    try:
        kid = bytes.fromhex(hex_id)
    except ValueError as exc:
        raise FormatError("key id not hex") from exc
    raw = b64decode_canonical(b64)
    if len(raw) != 33 or raw[0] != 0x01:
        raise FormatError("not an Ed25519 key")
    if key_id(name, 0x01, raw[1:]) != kid:
        raise FormatError("key id does not match name and key")
    return name, kid, Ed25519PublicKey.from_public_bytes(raw[1:])


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise FormatError("malformed note text")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise FormatError("control character in note text")


def open_note(
    note: str,
    trusted: dict[tuple[str, bytes], Ed25519PublicKey],
    signers: set[tuple[str, bytes]] | None = None,
    *,
    require_signature: bool = True,
) -> str:
    """The text of a signed note if a trusted key signed it and every trusted signature on it
    verifies; raises FormatError otherwise (section 5). ``signers`` collects the (name, key id)
    of each trusted key whose signature verified. ``require_signature`` False: the text of a
    well-formed note, whoever signed it."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise FormatError("no signature block")
    text, block = note[: cut + 1], note[cut + 2 :]
    _check_text(text)
    lines = block[:-1].split("\n")
    if not lines or len(lines) > 100:
        raise FormatError("signature count")
    signed = False
    for line in lines:
        if not line.startswith(EM_DASH + " "):
            raise FormatError("malformed signature line")
        fields = line[2:].split(" ")
        if len(fields) != 2 or not fields[0]:
            raise FormatError("malformed signature line")
        raw = b64decode_canonical(fields[1])
        if len(raw) < 5:
            raise FormatError("short signature")
        key = trusted.get((fields[0], raw[:4]))
        if key is None:
            continue
        try:
            key.verify(raw[4:], text.encode("utf-8"))
        except InvalidSignature as exc:
            raise FormatError("a trusted signature does not verify") from exc
        signed = True
        if signers is not None:
            signers.add((fields[0], raw[:4]))
    if not signed and require_signature:
        raise FormatError("no trusted key signed the note")
    return text


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    """(origin, size, root) of a checkpoint note text (section 5)."""
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not lines[0]:
        raise FormatError("checkpoint has fewer than three lines")
    size_text = lines[1]
    if not size_text.isascii() or not size_text.isdigit() or size_text != str(int(size_text)):
        raise FormatError("bad tree size")
    root = b64decode_canonical(lines[2])
    if len(root) != 32:
        raise FormatError("root is not 32 bytes")
    return lines[0], int(size_text), root


OPAQUE = object()  # a payload absent, or not JSON text: its content is not read (section 3.4)


def parse_json_text(data: bytes) -> Any:
    """Section 3.4: the value of JSON text (RFC 8259) in UTF-8 with no byte order mark, or OPAQUE.
    Not JSON: NaN and infinities, a number beyond the finite doubles, a lone surrogate. An
    integer outside [-2^63, 2^64 - 1] is read as a non-integer number."""
    if data.startswith(b"\xef\xbb\xbf"):
        return OPAQUE
    try:
        value = json.loads(
            data.decode("utf-8"),
            parse_constant=_not_json,
            parse_float=_finite,
            parse_int=_integer,
        )
    except (ValueError, UnicodeError, RecursionError):
        return OPAQUE
    return OPAQUE if _has_surrogate(value) else value


def _not_json(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is beyond the finite doubles")
    return value


def _integer(text: str) -> int | float:
    value = int(text)
    return value if -(2**63) <= value < 2**64 else _finite(text)


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    return False
