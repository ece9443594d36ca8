"""Sampling parameters and the batched, replayable sampler.

Replay rule (C5): every request owns a ``torch.Generator`` seeded with ``SamplingParams.seed``.
Each sampled token consumes exactly one uniform draw from that request's generator, and the token
is the inverse CDF of the row's filtered distribution at that uniform. A row's result therefore
depends only on its own logits, parameters and generator, never on the other rows of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import torch

from auditlog.errors import EngineError, InvalidRequestError

__all__ = [
    "MAX_SEED",
    "SamplingParams",
    "draw_uniforms",
    "make_generator",
    "probs_from_logits",
    "sample",
    "sample_from_probs",
]

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed accepts 0..2^64-1; we keep int64 range


def _decimal_string(value: float) -> str:
    """Shortest round-trip decimal of ``value`` in positional notation ("0.7", "1.0", "0.00001")."""
    text = format(Decimal(repr(float(value))), "f")
    return text if "." in text else text + ".0"


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplingParams:
    """Every knob that decides a request's tokens; with the seed, enough to replay it (C5)."""

    temperature: float = 0.0  # 0 = greedy (argmax)
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # nucleus mass in (0, 1]; 1 = off
    max_tokens: int = 64
    seed: int = 0
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0.0

    def validate(self) -> None:
        """Raise ``InvalidRequestError`` naming the first bad parameter."""
        for name in ("temperature", "top_p"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequestError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise InvalidRequestError(f"{name} must be finite, got {value!r}")
        for name in ("top_k", "max_tokens", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidRequestError(f"{name} must be an integer, got {value!r}")
        if self.temperature < 0:
            raise InvalidRequestError(f"temperature must be >= 0, got {self.temperature!r}")
        if self.top_k < 0:
            raise InvalidRequestError(f"top_k must be >= 0 (0 = off), got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise InvalidRequestError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.max_tokens < 1:
            raise InvalidRequestError(f"max_tokens must be >= 1, got {self.max_tokens!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise InvalidRequestError(f"seed must be in 0..{MAX_SEED}, got {self.seed!r}")
        if not isinstance(self.stop, tuple) or any(
            not isinstance(s, str) or not s for s in self.stop
        ):
            raise InvalidRequestError(
                f"stop must be a tuple of non-empty strings, got {self.stop!r}"
            )
        if not isinstance(self.stop_token_ids, tuple) or any(
            isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in self.stop_token_ids
        ):
            raise InvalidRequestError(
                f"stop_token_ids must be a tuple of non-negative integers, got "
                f"{self.stop_token_ids!r}"
            )
        if not isinstance(self.ignore_eos, bool):
            raise InvalidRequestError(f"ignore_eos must be a bool, got {self.ignore_eos!r}")

    def to_record(self) -> dict[str, Any]:
        """JSON-safe form for the audit record: no floats, and the seed as a decimal string.

        ``temperature`` and ``top_p`` are the shortest decimal strings that round-trip to the same
        float64 ("0.7"); ``seed`` is a string because it may exceed 2^53 - 1.
        """
        return {
            "temperature": _decimal_string(self.temperature),
            "top_k": self.top_k,
            "top_p": _decimal_string(self.top_p),
            "max_tokens": self.max_tokens,
            "seed": str(self.seed),
            "stop": list(self.stop),
            "stop_token_ids": list(self.stop_token_ids),
            "ignore_eos": self.ignore_eos,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SamplingParams:
        """Inverse of ``to_record`` (for replay); raise ``InvalidRequestError`` on a bad record."""
        try:
            params = cls(
                temperature=float(Decimal(record["temperature"])),
                top_k=record["top_k"],
                top_p=float(Decimal(record["top_p"])),
                max_tokens=record["max_tokens"],
                seed=int(record["seed"]),
                stop=tuple(record["stop"]),
                stop_token_ids=tuple(record["stop_token_ids"]),
                ignore_eos=record["ignore_eos"],
            )
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise InvalidRequestError(f"bad sampling parameter record: {exc!r}") from exc
        params.validate()
        return params


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The per-request generator: ``torch.Generator(device)`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def draw_uniforms(generators: Sequence[torch.Generator], device: torch.device) -> torch.Tensor:
    """One float64 uniform in [0, 1) per row, each from that row's own generator -> [B]."""
    if not generators:
        return torch.empty(0, dtype=torch.float64, device=device)
    draws = [torch.rand(1, generator=g, device=g.device, dtype=torch.float64) for g in generators]
    return torch.cat([d.to(device) for d in draws])


def probs_from_logits(logits: torch.Tensor, params: Sequence[SamplingParams]) -> torch.Tensor:
    """Per-row filtered distribution: temperature, then top-k, then top-p -> float32 [B, V].

    Greedy rows (temperature 0) are the one-hot of the argmax (the first index among ties).
    """
    if logits.dim() != 2 or logits.shape[0] != len(params):
        raise EngineError(
            f"logits must be [B, V] with B = {len(params)} parameter sets, "
            f"got {tuple(logits.shape)}"
        )
    logits = logits.float()  # logits: [B, V]
    vocab = logits.shape[-1]
    device = logits.device
    temps = torch.tensor([p.temperature for p in params], dtype=torch.float32, device=device)
    is_greedy = temps == 0  # [B]
    scaled = logits / torch.where(is_greedy, 1.0, temps)[:, None]  # [B, V]
    probs = torch.softmax(scaled, dim=-1)

    # Each row takes one path chosen by its own parameters alone, so rows never affect each other.
    has_filter = [not p.is_greedy and (p.top_k > 0 or p.top_p < 1.0) for p in params]
    if any(has_filter):
        top_k = torch.tensor(
            [min(p.top_k, vocab) if p.top_k > 0 else vocab for p in params], device=device
        )
        top_p = torch.tensor([p.top_p for p in params], dtype=torch.float32, device=device)
        sorted_logits, sorted_idx = scaled.sort(dim=-1, descending=True, stable=True)  # [B, V]
        ranks = torch.arange(vocab, device=device)  # [V]
        # top-k: keep ranks 0..k-1
        sorted_logits = sorted_logits.masked_fill(ranks[None, :] >= top_k[:, None], -math.inf)
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        # top-p: keep the shortest prefix whose mass reaches top_p (the first token always stays):
        # drop a token when the mass strictly before it already reaches top_p.
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        drop = (mass_before >= top_p[:, None]) & (top_p < 1.0)[:, None]
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        sorted_probs = sorted_probs / sorted_probs.sum(dim=-1, keepdim=True)
        filtered = torch.zeros_like(probs).scatter_(-1, sorted_idx, sorted_probs)
        row_mask = torch.tensor(has_filter, device=device)[:, None]
        probs = torch.where(row_mask, filtered, probs)

    if bool(is_greedy.any()):
        one_hot = torch.zeros_like(probs)
        one_hot.scatter_(-1, logits.argmax(dim=-1, keepdim=True), 1.0)
        probs = torch.where(is_greedy[:, None], one_hot, probs)
    return probs


def sample_from_probs(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: row b takes the first index whose CDF exceeds ``uniforms[b]`` * mass.

    probs: [B, V] (need not be normalised), uniforms: [B] in [0, 1) -> LongTensor [B]. A token with
    zero probability is never returned.
    """
    if probs.dim() != 2 or uniforms.shape != (probs.shape[0],):
        raise EngineError(
            f"expected probs [B, V] and uniforms [B], got {tuple(probs.shape)} and "
            f"{tuple(uniforms.shape)}"
        )
    cdf = probs.double().cumsum(dim=-1)  # [B, V]
    mass = cdf[:, -1]  # [B]
    if bool((mass <= 0).any()) or not bool(torch.isfinite(mass).all()):
        bad = int(((mass <= 0) | ~torch.isfinite(mass)).nonzero()[0, 0])
        raise EngineError(f"row {bad} has no usable probability mass: {float(mass[bad])!r}")
    target = (uniforms.double() * mass)[:, None]  # [B, 1]
    index = torch.searchsorted(cdf, target, right=True).squeeze(-1)  # [B]
    # rounding can push the target past the last positive entry: clamp to it
    vocab = probs.shape[-1]
    last_positive = vocab - 1 - (probs.flip(-1) > 0).int().argmax(dim=-1)  # [B]
    return torch.minimum(index, last_positive)


def sample(
    logits: torch.Tensor,
    params: Sequence[SamplingParams],
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """Sample one token per row, each with its own request's generator -> LongTensor [B].

    logits: [B, V]. Every row consumes exactly one uniform from ``generators[b]``.
    """
    if len(generators) != len(params):
        raise EngineError(
            f"need one generator per row: got {len(generators)} for {len(params)} rows"
        )
    probs = probs_from_logits(logits, params)  # [B, V]
    return sample_from_probs(probs, draw_uniforms(generators, probs.device))
