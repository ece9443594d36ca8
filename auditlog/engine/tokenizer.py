"""Byte-level tokenizer of the demo models.

Token ids 0..255 are the bytes 0x00..0xFF (id == byte value); ``<bos>``, ``<eos>`` and ``<pad>``
follow at 256, 257 and 258. Any UTF-8 text encodes, and ``decode(encode(text)) == text`` for every
string. The file format is a Hugging Face ``tokenizer.json`` (a byte-level BPE with no merges), so
``transformers`` and other tools read the same file.

Special tokens are never parsed out of input text: a prompt containing the characters ``<eos>``
encodes as those five bytes, so a caller cannot inject a control token through text.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from auditlog.errors import ConfigurationError, InvalidRequestError

__all__ = [
    "BOS_TOKEN",
    "EOS_TOKEN",
    "NUM_BYTE_TOKENS",
    "PAD_TOKEN",
    "ByteTokenizer",
    "build_byte_level_tokenizer",
]

NUM_BYTE_TOKENS = 256
BOS_TOKEN = "<bos>"
EOS_TOKEN = "<eos>"
PAD_TOKEN = "<pad>"
SPECIAL_TOKENS: tuple[str, ...] = (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN)  # ids 256, 257, 258


def build_byte_level_tokenizer() -> Tokenizer:
    """Build the byte-level ``tokenizers.Tokenizer``: id of byte b is b, then the special tokens."""
    # ByteLevel maps each byte to one printable character (the GPT-2 table); vocab[char(b)] = b.
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    byte_to_char = _gpt2_byte_to_char()
    if sorted(alphabet) != sorted(byte_to_char.values()):
        raise ConfigurationError("tokenizers ByteLevel alphabet differs from the GPT-2 byte table")
    vocab = {byte_to_char[b]: b for b in range(NUM_BYTE_TOKENS)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok


def _gpt2_byte_to_char() -> dict[int, str]:
    """The GPT-2 byte -> printable character table that byte-level BPE uses."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(NUM_BYTE_TOKENS):
        if b not in table:
            table[b] = chr(NUM_BYTE_TOKENS + extra)
            extra += 1
    return table


class ByteTokenizer:
    """Encode text to byte ids and back; reject ids outside the vocabulary."""

    def __init__(self, *, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer
        self._tok.encode_special_tokens = True  # text "<eos>" is 5 bytes, never the control token
        self.vocab_size: int = tokenizer.get_vocab_size(with_added_tokens=True)
        ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        if any(i is None for i in ids):
            raise ConfigurationError(f"tokenizer lacks one of the special tokens {SPECIAL_TOKENS}")
        self.bos_id: int = int(ids[0])  # type: ignore[arg-type]
        self.eos_id: int = int(ids[1])  # type: ignore[arg-type]
        self.pad_id: int = int(ids[2])  # type: ignore[arg-type]
        self.special_ids: frozenset[int] = frozenset((self.bos_id, self.eos_id, self.pad_id))
        # byte-level check: the first 256 ids must be the bytes themselves
        if self.encode("".join(chr(b) for b in range(128))) != list(range(128)):
            raise ConfigurationError("tokenizer is not byte-level: id of byte b must be b")

    @classmethod
    def from_file(cls, path: str | Path) -> ByteTokenizer:
        """Load a ``tokenizer.json``; raise ``ConfigurationError`` if it is missing or unusable."""
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises its own Exception subclass
            raise ConfigurationError(f"cannot load tokenizer {str(path)!r}: {exc}") from exc
        return cls(tokenizer=tok)

    @classmethod
    def byte_level(cls) -> ByteTokenizer:
        """The tokenizer of the demo models, built in memory."""
        return cls(tokenizer=build_byte_level_tokenizer())

    def save(self, path: str | Path) -> None:
        """Write the ``tokenizer.json`` file."""
        self._tok.save(str(path))

    def encode(self, text: str) -> list[int]:
        """Return the byte ids of ``text`` (UTF-8); special tokens are never added or parsed."""
        if not isinstance(text, str):
            raise InvalidRequestError(f"text must be a str, got {type(text).__name__}")
        try:
            return list(self._tok.encode(text, add_special_tokens=False).ids)
        except Exception as exc:  # lone surrogates cannot be UTF-8 encoded
            raise InvalidRequestError(f"text cannot be encoded as UTF-8: {exc}") from exc

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Return the raw bytes of ``ids``, special tokens skipped (for incremental decoding)."""
        return bytes(i for i in self._check_ids(ids) if i < NUM_BYTE_TOKENS)

    def decode(self, ids: Iterable[int]) -> str:
        """Return the text of ``ids``, special tokens skipped; invalid UTF-8 becomes U+FFFD."""
        return self._tok.decode(self._check_ids(ids), skip_special_tokens=True)

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        checked: list[int] = []
        for index, raw in enumerate(ids):
            try:
                i = -1 if isinstance(raw, bool) else operator.index(raw)
            except TypeError:
                i = -1
            if not 0 <= i < self.vocab_size:
                raise InvalidRequestError(
                    f"token id at index {index} is outside the vocabulary: expected an int in "
                    f"0..{self.vocab_size - 1}, got {raw!r}"
                )
            checked.append(i)
        return checked

    def is_special(self, token_id: int) -> bool:
        """Whether ``token_id`` is ``<bos>``, ``<eos>`` or ``<pad>``."""
        return token_id in self.special_ids

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        """Per-token display strings for transcripts: printable ASCII as is, else ``\\xNN``."""
        out = []
        for i in self._check_ids(ids):
            if i >= NUM_BYTE_TOKENS:
                out.append(self._tok.id_to_token(i) or f"<{i}>")
            elif 0x20 <= i < 0x7F:
                out.append(chr(i))
            else:
                out.append(f"\\x{i:02x}")
        return out
