"""Batch-invariant kernels (``auditlog.engine.numerics``): a request's logits are bit-identical
whatever else is in the batch, however its prefill is chunked, in float32 and bfloat16; and they
agree with the library kernels up to rounding. Replay (docs/REPLAY.md, C5) rests on this."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

import torch
import torch.nn.functional as F

from auditlog.engine.corpus import prompts
from auditlog.engine.llm_engine import DEMO_MODELS_DIR
from auditlog.engine.loader import LoadedModel, load_model
from auditlog.engine.model_runner import Chunk, ModelRunner
from auditlog.engine.numerics import tiled_linear
from auditlog.engine.tokenizer import ByteTokenizer

pytestmark = pytest.mark.engine

BLOCK = 16


def test_tiled_linear_rows_do_not_depend_on_the_batch() -> None:
    gen = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(70, 48, generator=gen), torch.randn(70, generator=gen)
    x = torch.randn(40, 48, generator=gen)
    full = tiled_linear(x, weight, bias)
    for rows in (slice(0, 1), slice(3, 5), slice(7, 24), slice(1, 40)):
        assert torch.equal(tiled_linear(x[rows], weight, bias), full[rows])
    torch.testing.assert_close(full, F.linear(x, weight, bias))
    assert tiled_linear(x[:0], weight, bias).shape == (0, 70)


def _runner(model: LoadedModel) -> ModelRunner:
    return ModelRunner(model=model.model, num_blocks=256, block_size=BLOCK, device="cpu")


def _table(start: int, num_tokens: int) -> list[int]:
    return list(range(start, start + -(-num_tokens // BLOCK)))


def _last_logits(model: LoadedModel, batch: list[list[int]], index: int) -> torch.Tensor:
    """Prefill every prompt of ``batch`` in one pass; logits of the last token of ``index``."""
    chunks: list[Chunk] = []
    ends, offset, block = [], 0, 0
    for ids in batch:
        chunks.append((_table(block, len(ids)), 0, ids))
        block += len(chunks[-1][0])
        offset += len(ids)
        ends.append(offset - 1)
    return _runner(model).forward(chunks, ends)[index]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_logits_bit_identical_alone_batched_and_chunked(dtype: torch.dtype) -> None:
    torch.set_num_threads(1)
    model = load_model(DEMO_MODELS_DIR / "target", dtype=dtype)
    model.model.set_batch_invariant(True)
    tokenizer = ByteTokenizer.from_file(model.tokenizer_path)
    ids = [tokenizer.encode(p) for p in prompts(num_prompts=12, seed=3)]
    alone = _last_logits(model, [ids[0]], 0)
    assert torch.equal(alone, _last_logits(model, ids, 0))
    assert torch.equal(alone, _last_logits(model, [*ids[1:], ids[0]], len(ids) - 1))
    # the prompt prefilled in two chunks, the second one batched with another prompt
    runner, half = _runner(model), len(ids[0]) // 2
    table = _table(0, len(ids[0]))
    runner.forward([(table, 0, ids[0][:half])], [half - 1])
    chunked = runner.forward(
        [(table, half, ids[0][half:]), (_table(len(table), len(ids[1])), 0, ids[1])],
        [len(ids[0]) - half - 1],
    )[0]
    assert torch.equal(alone, chunked)
    # the library kernels give the same logits up to rounding
    model.model.set_batch_invariant(False)
    library = _last_logits(model, [ids[0]], 0)
    tolerance = 1e-4 if dtype == torch.float32 else 0.1
    torch.testing.assert_close(library, alone, atol=tolerance, rtol=0)
