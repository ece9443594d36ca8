"""C13: only approved algorithms on the integrity path (SHA-256, Ed25519).

A static check of the modules that hash, sign or verify: no other digest or signature scheme is
even named there, so none can be used by accident (a cache key, a "fast" checksum).
"""

from __future__ import annotations

import re
from pathlib import Path

import auditlog

INTEGRITY_PATH = ("ledger", "recorder", "store", "bundle", "verifier.py", "trails.py")
FORBIDDEN = re.compile(
    r"\b(md5|sha1|sha224|sha384|sha512|sha3_\w+|blake2[bs]?|xxhash|crc32|adler32|ed448|"
    r"ecdsa|rsa|dsa|hmac)\b",
    re.IGNORECASE,
)


def _sources() -> list[Path]:
    root = Path(auditlog.__file__).parent
    files: list[Path] = []
    for name in INTEGRITY_PATH:
        path = root / name
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def test_integrity_path_names_no_other_algorithm() -> None:
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in _sources()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if FORBIDDEN.search(line)
    ]
    assert offenders == []


def test_hashes_and_signatures_are_sha256_and_ed25519() -> None:
    text = "\n".join(p.read_text() for p in _sources())
    assert set(re.findall(r"hashlib\.(\w+)", text)) == {"sha256"}
    asymmetric = set(re.findall(r"cryptography\.hazmat\.primitives\.asymmetric\.(\w+)", text))
    assert asymmetric == {"ed25519"}
