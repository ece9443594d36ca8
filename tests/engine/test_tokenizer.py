"""The byte-level tokenizer: exact round trips, special tokens, vocabulary checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("tokenizers")

from auditlog.engine.tokenizer import ByteTokenizer
from auditlog.errors import ConfigurationError, InvalidRequestError

pytestmark = pytest.mark.engine

TOKENIZER = ByteTokenizer.byte_level()


@given(st.text())
def test_decode_inverts_encode_for_any_text(text: str) -> None:
    ids = TOKENIZER.encode(text)
    assert ids == list(text.encode("utf-8"))  # id of byte b is b
    assert TOKENIZER.decode(ids) == text


@given(st.binary())
def test_decode_bytes_inverts_any_byte_string(data: bytes) -> None:
    assert TOKENIZER.decode_bytes(list(data)) == data


def test_layout_and_special_ids() -> None:
    assert TOKENIZER.vocab_size == 259
    assert (TOKENIZER.bos_id, TOKENIZER.eos_id, TOKENIZER.pad_id) == (256, 257, 258)
    assert TOKENIZER.is_special(257) and not TOKENIZER.is_special(10)


def test_special_token_text_is_not_parsed_from_input() -> None:
    """A prompt cannot inject <eos> through text: it stays five bytes."""
    assert TOKENIZER.encode("<eos>") == list(b"<eos>")
    assert TOKENIZER.decode([*b"Agent: ok", TOKENIZER.eos_id]) == "Agent: ok"


def test_partial_utf8_decodes_with_replacement_character() -> None:
    ids = TOKENIZER.encode("日")
    assert TOKENIZER.decode(ids[:2]) == "\ufffd"
    assert TOKENIZER.decode_bytes(ids[:2]) == "日".encode()[:2]


@pytest.mark.parametrize("bad", [259, -1, 10_000, 2.0, True, "a"])
def test_ids_outside_vocabulary_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidRequestError, match="token id at index 1 is outside the vocabulary"):
        TOKENIZER.decode([65, bad])  # type: ignore[list-item]


def test_lone_surrogate_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="cannot be encoded as UTF-8"):
        TOKENIZER.encode("a\ud800")


def test_file_round_trip_and_hf_compatibility(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    TOKENIZER.save(path)
    loaded = ByteTokenizer.from_file(path)
    text = "Customer: my order #12345 — 5 €\nAgent: ok"
    assert loaded.encode(text) == TOKENIZER.encode(text)
    transformers = pytest.importorskip("transformers")
    hf = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path))
    assert hf.encode(text, add_special_tokens=False) == TOKENIZER.encode(text)
    assert hf.decode(TOKENIZER.encode(text)) == text


def test_missing_or_broken_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot load tokenizer"):
        ByteTokenizer.from_file(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="cannot load tokenizer"):
        ByteTokenizer.from_file(broken)


def test_token_strings_for_transcripts() -> None:
    assert TOKENIZER.token_strings([72, 10, 257]) == ["H", "\\x0a", "<eos>"]
