"""C2SP tlog-tiles: tile paths, hash tiles and entry bundles of an RFC 9162 tree (pure).

* hash tile ``tile/<L>/<N>[.p/<W>]``: the hashes of the complete subtrees at Merkle level 8·L
  with indices 256·N .. 256·N + W - 1 (W = 256 for a full tile), concatenated (32 bytes each);
  level 0 holds the leaf hashes. A tree of size s has ``s >> 8L`` such subtrees at level L.
* entry bundle ``tile/entries/<N>[.p/<W>]``: entries 256·N .. 256·N + W - 1, each as a 2-byte
  big-endian length and the entry bytes; an entry's leaf hash is SHA-256(0x00 || entry). Here an
  entry is a record's canonical header (its leaf, FORMAT.md section 4).
* ``<N>`` is written in groups of three digits, all but the last prefixed with ``x``
  (1234067 -> ``x001/x234/067``); ``W`` is 1..255 without leading zeros.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from auditlog.errors import FormatError

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "encode_entry_bundle",
    "level_count",
    "parse_tile_index",
    "tile_index_path",
]

#: Levels of the Merkle tree per tile level; hashes per full tile.
TILE_HEIGHT = 8
TILE_WIDTH = 256
_INDEX = re.compile(r"(?:x\d{3}/)*\d{3}")
_WIDTH = re.compile(r"[1-9]\d{0,2}")


def tile_index_path(index: int) -> str:
    """``index`` as tile path elements: 1234067 -> ``x001/x234/067``."""
    if index < 0:
        raise FormatError(f"tile index must be non-negative, got {index}")
    digits = str(index)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def parse_tile_index(path: str) -> tuple[int, int | None]:
    """(index, width or None for a full tile) from ``<N>[.p/<W>]``; raises FormatError."""
    index_part, sep, width_part = path.partition(".p/")
    if not _INDEX.fullmatch(index_part):
        raise FormatError(f"not a tile index: {index_part!r}")
    groups = index_part.replace("x", "").split("/")
    if len(groups) > 1 and groups[0] == "000":
        raise FormatError(f"tile index has a leading zero group: {index_part!r}")
    width = None
    if sep:
        if not _WIDTH.fullmatch(width_part) or int(width_part) >= TILE_WIDTH:
            raise FormatError(f"partial tile width must be 1..255: {width_part!r}")
        width = int(width_part)
    return int("".join(groups)), width


def level_count(size: int, level: int) -> int:
    """How many complete subtrees a tree of ``size`` leaves has at tile level ``level``."""
    return size >> (TILE_HEIGHT * level)


def encode_entry_bundle(entries: Iterable[bytes]) -> bytes:
    """Entries as an entry bundle: each a 2-byte big-endian length, then its bytes."""
    out = bytearray()
    for entry in entries:
        if len(entry) > 0xFFFF:
            raise FormatError(f"an entry of {len(entry)} bytes does not fit an entry bundle")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)
