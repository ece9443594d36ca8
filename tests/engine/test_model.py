"""Model + loader against transformers (C4 digests), and paged attention against dense attention."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine_fixtures import save_tiny_model  # noqa: E402

from auditlog.engine.attention import KVCache, build_metadata, paged_attention  # noqa: E402
from auditlog.engine.loader import load_model  # noqa: E402
from auditlog.errors import ConfigurationError  # noqa: E402

pytestmark = pytest.mark.engine


def _paged_logits(loaded, token_ids: list[int], chunks: list[int]) -> torch.Tensor:
    """Run ``token_ids`` through our model in ``chunks`` (prefill pieces), return all logits."""
    model = loaded.model
    cache = model.allocate_cache(num_blocks=16, block_size=4, device="cpu")
    table = [5, 2, 9, 0, 7, 11, 3, 1]  # deliberately scattered blocks
    out, start = [], 0
    for n in chunks:
        meta = build_metadata(
            block_tables=[table],
            start_positions=[start],
            query_lens=[n],
            block_size=4,
            device="cpu",
        )
        ids = torch.tensor(token_ids[start : start + n])
        with torch.no_grad():
            out.append(model.compute_logits(model(ids, cache, meta)))
        start += n
    return torch.cat(out)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("tie", [False, True])
def test_logits_match_transformers(tmp_path: Path, arch: str, tie: bool) -> None:
    from transformers import AutoModelForCausalLM

    save_tiny_model(tmp_path, arch, tie_word_embeddings=tie)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ours = load_model(tmp_path)
    ids = [256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 5, 200, 17, 3]
    with torch.no_grad():
        expected = hf(torch.tensor([ids])).logits[0]
    torch.testing.assert_close(_paged_logits(ours, ids, [len(ids)]), expected, atol=1e-4, rtol=1e-4)
    # same logits when the sequence arrives in chunks (chunked prefill + decode steps)
    torch.testing.assert_close(
        _paged_logits(ours, ids, [7, 5, 1, 1, 5]), expected, atol=1e-4, rtol=1e-4
    )
    assert ours.config.tie_word_embeddings is tie
    if tie:
        assert ours.model.lm_head.weight is ours.model.model.embed_tokens.weight


def test_model_ref_digests_are_sha256_of_files(tmp_path: Path) -> None:
    """C4: weights digest = SHA-256 of the sha256sum manifest; tokenizer digest = file SHA-256."""
    save_tiny_model(tmp_path, "llama")
    ref = load_model(tmp_path, name="tiny").ref
    weights = tmp_path / "model.safetensors"
    manifest = f"{hashlib.sha256(weights.read_bytes()).hexdigest()}  model.safetensors\n"
    assert ref.weights_sha256 == hashlib.sha256(manifest.encode()).hexdigest()
    tok = (tmp_path / "tokenizer.json").read_bytes()
    assert ref.tokenizer_sha256 == hashlib.sha256(tok).hexdigest()
    assert (ref.name, ref.architecture) == ("tiny", "LlamaForCausalLM")
    # one flipped byte in the weights changes the identity
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert load_model(tmp_path).ref.weights_sha256 != ref.weights_sha256


def test_loader_rejects_bad_directories(tmp_path: Path) -> None:
    save_tiny_model(tmp_path, "llama")
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigurationError, match="unsupported architecture"):
        load_model(tmp_path)
    cfg["architectures"] = ["LlamaForCausalLM"]
    cfg["num_hidden_layers"] = 3  # checkpoint has 2 layers
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigurationError, match=r"missing \['model.layers.2"):
        load_model(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(ConfigurationError, match=r"missing tokenizer\.json"):
        load_model(tmp_path)


def test_paged_attention_matches_dense_varlen() -> None:
    """Three sequences, different cached lengths and chunk sizes, GQA 4:2, vs dense SDPA."""
    gen = torch.Generator().manual_seed(0)
    heads, kv_heads, dim, block = 4, 2, 8, 4
    starts, qlens = [0, 9, 3], [6, 1, 5]  # prefill, decode, verification-like chunk
    tables = [[3, 7], [0, 5, 9], [8, 1, 2]]
    k_cache = torch.zeros(12, block, kv_heads, dim)
    v_cache = torch.zeros(12, block, kv_heads, dim)
    full_k, full_v = [], []
    for b, (s, n) in enumerate(zip(starts, qlens, strict=True)):
        k = torch.randn(s + n, kv_heads, dim, generator=gen)
        v = torch.randn(s + n, kv_heads, dim, generator=gen)
        full_k.append(k)
        full_v.append(v)
        for t in range(s):  # pre-fill the cache with the already-cached prefix
            k_cache[tables[b][t // block], t % block] = k[t]
            v_cache[tables[b][t // block], t % block] = v[t]
    qs = [torch.randn(n, heads, dim, generator=gen) for n in qlens]
    meta = build_metadata(
        block_tables=tables,
        start_positions=starts,
        query_lens=qlens,
        block_size=block,
        device="cpu",
    )
    new_k = torch.cat([k[s:] for k, s in zip(full_k, starts, strict=True)])
    new_v = torch.cat([v[s:] for v, s in zip(full_v, starts, strict=True)])
    out = paged_attention(torch.cat(qs), new_k, new_v, k_cache, v_cache, meta, scale=dim**-0.5)
    expected = []
    for b, (s, n) in enumerate(zip(starts, qlens, strict=True)):
        q = qs[b].transpose(0, 1)  # [H, n, D]
        k = full_k[b].repeat_interleave(2, dim=1).transpose(0, 1)  # [H, s+n, D]
        v = full_v[b].repeat_interleave(2, dim=1).transpose(0, 1)
        causal = torch.ones(n, s + n, dtype=torch.bool).tril(diagonal=s)
        expected.append(
            torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=causal).transpose(
                0, 1
            )
        )
    torch.testing.assert_close(out, torch.cat(expected))
    assert not torch.isnan(out).any()


def test_kv_cache_shape() -> None:
    cache = KVCache.allocate(
        num_layers=2,
        num_blocks=3,
        block_size=4,
        num_kv_heads=2,
        head_dim=8,
        device="cpu",
        dtype=torch.float32,
    )
    assert len(cache.keys) == 2 and cache.keys[0].shape == (3, 4, 2, 8)
