"""Model files found by digest: the weights a trail names, looked up in a model directory."""

from __future__ import annotations

from pathlib import Path

from auditlog.errors import ReplayRefusedError

from .plan import ModelIdentity

__all__ = ["find_model"]

#: How deep below the model directory model folders are looked for.
_MAX_DEPTH = 2


def _candidates(root: Path) -> list[Path]:
    """``root`` and its sub-directories (to ``_MAX_DEPTH``) that hold a safetensors file."""
    found: list[Path] = []
    level = [root]
    for _ in range(_MAX_DEPTH + 1):
        found.extend(d for d in level if any(d.glob("*.safetensors")))
        level = sorted(c for d in level for c in _subdirs(d))
    return found


def _subdirs(directory: Path) -> list[Path]:
    try:
        return [c for c in directory.iterdir() if c.is_dir()]
    except OSError:  # unreadable: nothing to find there
        return []


def find_model(model_dir: Path, identity: ModelIdentity, what: str) -> Path:
    """The directory under ``model_dir`` whose weights and tokenizer have the recorded digests.

    Digests follow ``auditlog.engine.loader`` (weights: SHA-256 of the sha256sum manifest of the
    ``*.safetensors`` files; tokenizer: SHA-256 of ``tokenizer.json``). Raises
    ReplayRefusedError, naming the digest, when no directory matches.
    """
    from auditlog.engine.loader import TOKENIZER_FILE, WEIGHTS_GLOB, sha256_file, weights_digest

    if not model_dir.is_dir():
        raise ReplayRefusedError(f"model directory {model_dir} does not exist")
    for candidate in _candidates(model_dir):
        if weights_digest(sorted(candidate.glob(WEIGHTS_GLOB))) != identity.weights_sha256:
            continue
        tokenizer = candidate / TOKENIZER_FILE
        if not tokenizer.is_file() or sha256_file(tokenizer) != identity.tokenizer_sha256:
            continue
        return candidate
    raise ReplayRefusedError(
        f"no {what} model in {model_dir} has the recorded digests (weights "
        f"{identity.weights_sha256}, tokenizer {identity.tokenizer_sha256}, name "
        f"{identity.name!r}): replay needs the exact weights the request ran on"
    )
