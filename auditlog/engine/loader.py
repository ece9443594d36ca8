"""Load a local Hugging Face model directory and fingerprint it (C4).

A model directory holds ``config.json``, one or more ``*.safetensors`` files and ``tokenizer.json``.
Identity (``events.ModelRef``):

- ``weights_sha256`` = SHA-256 of the sha256sum(1) manifest of the weights files: one line
  ``<hex SHA-256 of file>  <file name>\\n`` per ``*.safetensors`` file, sorted by file name, so
  ``sha256sum *.safetensors | sha256sum`` in the directory reproduces it.
- ``tokenizer_sha256`` = SHA-256 of the ``tokenizer.json`` bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from auditlog.engine.config import ModelConfig
from auditlog.engine.model import CausalLM, RotaryEmbedding
from auditlog.errors import ConfigurationError
from auditlog.events import ModelRef

__all__ = ["LoadedModel", "load_model", "sha256_file", "weights_digest"]

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_GLOB = "*.safetensors"
_CHUNK = 1 << 20
# Checkpoint keys that are derived buffers, not weights.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedModel:
    model: CausalLM
    config: ModelConfig
    ref: ModelRef
    tokenizer_path: Path


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def weights_digest(files: list[Path]) -> str:
    """SHA-256 of the sha256sum(1) manifest ``<hex>  <name>\\n`` of ``files``, sorted by name."""
    manifest = "".join(f"{sha256_file(p)}  {p.name}\n" for p in sorted(files, key=lambda p: p.name))
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def load_model(
    path: str | Path,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    name: str | None = None,
) -> LoadedModel:
    """Build a ``CausalLM`` from a model directory; raise ``ConfigurationError`` if it is unusable.

    Every parameter MUST be present in the checkpoint (except ``lm_head.weight`` when the embeddings
    are tied) and no unknown tensor may be left over.
    """
    root = Path(path)
    config_path, tokenizer_path = root / CONFIG_FILE, root / TOKENIZER_FILE
    weight_files = sorted(root.glob(WEIGHTS_GLOB))
    for required in (config_path, tokenizer_path):
        if not required.is_file():
            raise ConfigurationError(f"model directory {root}: missing {required.name}")
    if not weight_files:
        raise ConfigurationError(f"model directory {root}: no {WEIGHTS_GLOB} files")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(
            f"model directory {root}: unreadable {CONFIG_FILE}: {exc}"
        ) from exc
    config = ModelConfig.from_hf(raw)

    state: dict[str, torch.Tensor] = {}
    for file in weight_files:
        state.update(load_file(str(file)))
    state = {k: v for k, v in state.items() if not k.endswith(_IGNORED_SUFFIXES)}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)

    with torch.device("meta"):  # no memory and no random init: every tensor comes from `state`
        model = CausalLM(config)
    expected = set(model.state_dict())
    if config.tie_word_embeddings:
        expected.discard("lm_head.weight")
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise ConfigurationError(
            f"model directory {root}: checkpoint does not match {config.architecture}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.load_state_dict(
        {k: v.to(device=device, dtype=dtype) for k, v in state.items()}, strict=False, assign=True
    )
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    with torch.device(device):
        model.model.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
    model.eval()

    ref = ModelRef(
        name=name or root.name,
        weights_sha256=weights_digest(weight_files),
        tokenizer_sha256=sha256_file(tokenizer_path),
        architecture=config.architecture,
    )
    return LoadedModel(model=model, config=config, ref=ref, tokenizer_path=tokenizer_path)
