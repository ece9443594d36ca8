"""The shipped demo model pair: files, configs, corpus-like output, draft acceptance (C4, C6).

Loads the directories with ``transformers`` (dev extra) so that these checks do not depend on the
engine's own model code; the engine's tests load the same files with ``auditlog.engine.loader``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from safetensors import safe_open  # noqa: E402

from auditlog.engine.corpus import CORPUS_SEED, DOMAINS, generate_corpus, prompts  # noqa: E402
from auditlog.engine.sampler import SamplingParams, make_generator, probs_from_logits  # noqa: E402
from auditlog.engine.speculative import verify_drafts  # noqa: E402
from auditlog.engine.tokenizer import ByteTokenizer  # noqa: E402

pytestmark = pytest.mark.engine

DEMO_DIR = Path(__file__).resolve().parents[2] / "auditlog" / "engine" / "demo_models"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")
MAX_TOTAL_BYTES = 25 * 1024 * 1024
PROMPT_SEED = 424242  # not the training corpus seed
MIN_ACCEPTANCE = 0.6
K = 4


@pytest.fixture(scope="module")
def tokenizer() -> ByteTokenizer:
    return ByteTokenizer.from_file(DEMO_DIR / "target" / "tokenizer.json")


@pytest.fixture(scope="module")
def pair() -> tuple[Any, Any]:
    torch.set_num_threads(2)
    load = transformers.LlamaForCausalLM.from_pretrained
    target = load(str(DEMO_DIR / "target"), dtype=torch.float32, local_files_only=True).eval()
    draft = load(str(DEMO_DIR / "draft"), dtype=torch.float32, local_files_only=True).eval()
    return target, draft


def test_corpus_is_deterministic_and_shaped_as_dialogues() -> None:
    first = list(generate_corpus(num_conversations=300, seed=CORPUS_SEED))
    assert first == list(generate_corpus(num_conversations=300, seed=CORPUS_SEED))
    assert first != list(generate_corpus(num_conversations=300, seed=CORPUS_SEED + 1))
    for text in first:
        lines = text.removesuffix("\n").split("\n")
        speakers = [line.split(": ", 1)[0] for line in lines]
        assert speakers == ["Customer", "Agent"] * (len(lines) // 2)
    assert len(set(first)) == len(first)  # names, orders, dates and amounts vary
    assert len(DOMAINS) >= 4


def test_prompts_end_where_the_agent_answers() -> None:
    (prompt,) = prompts(num_prompts=1, seed=PROMPT_SEED)
    assert prompt.startswith("Customer: ") and prompt.endswith("\nAgent:")


def test_directories_hold_the_model_files_within_budget() -> None:
    total = 0
    for name in ("target", "draft"):
        for file in MODEL_FILES:
            path = DEMO_DIR / name / file
            assert path.is_file(), f"missing {path.name} in {name}"
            total += path.stat().st_size
    assert total <= MAX_TOTAL_BYTES
    assert (DEMO_DIR / "README.md").is_file()
    # one tokenizer, byte for byte, for both models
    assert (DEMO_DIR / "target" / "tokenizer.json").read_bytes() == (
        DEMO_DIR / "draft" / "tokenizer.json"
    ).read_bytes()


def test_configs_describe_a_llama_pair_over_the_byte_tokenizer(tokenizer: ByteTokenizer) -> None:
    target = json.loads((DEMO_DIR / "target" / "config.json").read_text())
    draft = json.loads((DEMO_DIR / "draft" / "config.json").read_text())
    for cfg in (target, draft):
        assert cfg["architectures"] == ["LlamaForCausalLM"]
        assert cfg["vocab_size"] == tokenizer.vocab_size == 259
        assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (tokenizer.bos_id, tokenizer.eos_id)
        assert cfg["max_position_embeddings"] == 512
        assert cfg["num_key_value_heads"] < cfg["num_attention_heads"]  # GQA
    assert target["hidden_size"] == 256 and target["num_hidden_layers"] == 6
    assert draft["hidden_size"] * draft["num_hidden_layers"] * 4 <= target["hidden_size"] * 6


def test_weights_are_stored_in_bfloat16() -> None:
    for name in ("target", "draft"):
        with safe_open(DEMO_DIR / name / "model.safetensors", framework="pt") as fh:
            dtypes = {fh.get_slice(key).get_dtype() for key in fh.keys()}  # noqa: SIM118
        assert dtypes == {"BF16"}


def greedy_target_only(model: Any, ids: list[int], n: int, eos_id: int) -> list[int]:
    """Plain greedy decoding with transformers' own loop (KV cache), stopping after <eos>."""
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=n, do_sample=False, eos_token_id=eos_id
        )
    return [int(t) for t in out[0, len(ids) :]]


def greedy_speculative(
    target: Any, draft: Any, ids: list[int], n: int, eos_id: int
) -> tuple[list[int], int, int, int]:
    """k = 4 greedy speculative loop over verify_drafts -> (tokens, accepted, proposed, passes)."""
    vocab = target.config.vocab_size
    out: list[int] = []
    accepted = proposed = passes = 0
    with torch.no_grad():
        while len(out) < n and (not out or out[-1] != eos_id):
            num = min(K, n - len(out) - 1)
            drafts: list[int] = []
            for _ in range(num):
                logits = draft(input_ids=torch.tensor([ids + out + drafts])).logits[0, -1]
                drafts.append(int(logits.argmax()))
            # target_logits: [num + 1, V] for the positions of the drafts and the one after
            target_logits = target(input_ids=torch.tensor([ids + out + drafts])).logits[0]
            p = probs_from_logits(target_logits[-(num + 1) :], [SamplingParams()] * (num + 1))
            q = torch.nn.functional.one_hot(torch.tensor(drafts, dtype=torch.long), vocab)
            ((tokens, _),) = verify_drafts(
                torch.tensor(drafts, dtype=torch.long).view(1, num),
                q.float().view(1, num, vocab),
                p[None],
                [make_generator(0)],
            )
            passes, proposed, accepted = passes + 1, proposed + num, accepted + len(tokens) - 1
            if eos_id in tokens:
                tokens = tokens[: tokens.index(eos_id) + 1]
            out += tokens
    return out[:n], accepted, proposed, passes


def test_greedy_output_looks_like_the_corpus(
    pair: tuple[Any, Any], tokenizer: ByteTokenizer
) -> None:
    target, _ = pair
    (prompt,) = prompts(num_prompts=1, seed=PROMPT_SEED)
    ids = [tokenizer.bos_id, *tokenizer.encode(prompt)]
    text = prompt + tokenizer.decode(greedy_target_only(target, ids, 200, tokenizer.eos_id))
    lines = text.split("\n")
    assert text.count("Agent: ") >= 2 and "Customer: " in text
    assert all(line.startswith(("Customer: ", "Agent: ")) for line in lines[:-1] if line)


def test_speculative_greedy_equals_target_greedy_and_draft_is_accepted(
    pair: tuple[Any, Any], tokenizer: ByteTokenizer
) -> None:
    target, draft = pair
    accepted = proposed = 0
    for i, prompt in enumerate(prompts(num_prompts=3, seed=PROMPT_SEED)):
        ids = [tokenizer.bos_id, *tokenizer.encode(prompt)]
        spec, acc, prop, _ = greedy_speculative(target, draft, ids, 64, tokenizer.eos_id)
        accepted, proposed = accepted + acc, proposed + prop
        if i == 0:  # rejection sampling with one-hot p and q is exactly target greedy decoding
            assert spec == greedy_target_only(target, ids, 64, tokenizer.eos_id)
    assert accepted / proposed >= MIN_ACCEPTANCE
