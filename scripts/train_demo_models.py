"""Train the demo target/draft pair shipped in ``auditlog/engine/demo_models/``.

Both are ``transformers`` ``LlamaForCausalLM`` models over the byte-level tokenizer, trained on the
CPU from random initialisation on the seeded customer-support corpus of ``auditlog.engine.corpus``.
Run from the repository root (needs the dev extra, for ``transformers``)::

    python scripts/train_demo_models.py            # both models: 15-30 minutes on 2 cores
    python scripts/train_demo_models.py --only draft

The weights are written in bfloat16 (``model.safetensors``) beside ``config.json`` and
``tokenizer.json``; a README with the losses and the measured greedy acceptance rate goes beside
them.
Seeds are fixed, so a rerun with the same thread count reproduces the same weights.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from auditlog.engine.corpus import CORPUS_SEED, generate_corpus, prompts
from auditlog.engine.sampler import SamplingParams, make_generator, probs_from_logits
from auditlog.engine.speculative import verify_drafts
from auditlog.engine.tokenizer import ByteTokenizer

OUT_DIR = Path(__file__).resolve().parents[1] / "auditlog" / "engine" / "demo_models"
NUM_THREADS = 2
TRAIN_CONVERSATIONS = 6000
VALID_SEED = CORPUS_SEED + 1  # held-out conversations for the final loss
PROMPT_SEED = CORPUS_SEED + 2  # evaluation prompts, unseen in training
SEQ_LEN = 512
BATCH_SIZE = 8
SPEC_K = 4
ROPE_THETA = 10000.0


@dataclass(frozen=True)
class Shape:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int


@dataclass(frozen=True)
class Recipe:
    name: str
    shape: Shape
    steps: int
    lr: float
    seed: int


TARGET = Recipe("target", Shape(256, 6, 8, 4, 704), steps=240, lr=2e-3, seed=1)
DRAFT = Recipe("draft", Shape(128, 2, 4, 2, 352), steps=500, lr=3e-3, seed=2)
WARMUP_STEPS = 30


def hf_config(shape: Shape, tok: ByteTokenizer) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=tok.vocab_size,
        max_position_embeddings=SEQ_LEN,
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
        rms_norm_eps=1e-5,
        hidden_act="silu",  # SwiGLU MLP
        bos_token_id=tok.bos_id,
        eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id,
        tie_word_embeddings=False,
        **asdict(shape),
    )


def token_stream(tok: ByteTokenizer, *, num: int, seed: int) -> torch.Tensor:
    """<bos> conversation <eos> <bos> conversation <eos> ... -> LongTensor [N]."""
    ids: list[int] = []
    for text in generate_corpus(num_conversations=num, seed=seed):
        ids += [tok.bos_id, *tok.encode(text), tok.eos_id]
    return torch.tensor(ids, dtype=torch.long)


def lr_at(step: int, recipe: Recipe) -> float:
    """Linear warmup, then cosine decay to 10% of the peak."""
    if step < WARMUP_STEPS:
        return recipe.lr * (step + 1) / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / max(1, recipe.steps - WARMUP_STEPS)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def eval_loss(model: LlamaForCausalLM, stream: torch.Tensor) -> float:
    model.eval()
    usable = (stream.numel() - 1) // SEQ_LEN * SEQ_LEN
    windows = stream[:usable].view(-1, SEQ_LEN)  # [W, SEQ_LEN]
    losses = [model(input_ids=w, labels=w).loss.item() for w in windows.split(BATCH_SIZE)]
    return sum(losses) / len(losses)


def train(recipe: Recipe, tok: ByteTokenizer, train_ids: torch.Tensor) -> LlamaForCausalLM:
    torch.manual_seed(recipe.seed)
    model = LlamaForCausalLM(hf_config(recipe.shape, tok))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.95), weight_decay=0.01)
    gen = torch.Generator().manual_seed(recipe.seed)
    start = time.monotonic()
    model.train()
    for step in range(recipe.steps):
        # batch: [BATCH_SIZE, SEQ_LEN] windows at random offsets of the token stream
        offsets = torch.randint(0, train_ids.numel() - SEQ_LEN, (BATCH_SIZE,), generator=gen)
        batch = torch.stack([train_ids[o : o + SEQ_LEN] for o in offsets.tolist()])
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 20 == 0 or step == recipe.steps - 1:
            elapsed = time.monotonic() - start
            line = f"{recipe.name} step {step:4d} loss {loss.item():.4f} ({elapsed:.0f} s)"
            print(line, flush=True)
    return model


def save(model: LlamaForCausalLM, tok: ByteTokenizer, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    tok.save(out / "tokenizer.json")
    (out / "generation_config.json").unlink(missing_ok=True)  # the engine does not read it
    # transformers 5 writes rope_parameters; older readers look for a top-level rope_theta
    config_path = out / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["rope_theta"] = ROPE_THETA
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for path in out.iterdir():
        path.chmod(0o644)


def greedy_speculative(
    target: LlamaForCausalLM,
    draft: LlamaForCausalLM,
    prompt_ids: list[int],
    *,
    max_new_tokens: int,
    eos_id: int,
    k: int = SPEC_K,
) -> tuple[list[int], int, int, int]:
    """Greedy speculative decoding (no KV cache) -> (tokens, accepted, proposed, target passes)."""
    greedy = [SamplingParams()]
    vocab = target.config.vocab_size
    ids, out = list(prompt_ids), list[int]()
    accepted = proposed = passes = 0
    with torch.no_grad():
        while len(out) < max_new_tokens and (not out or out[-1] != eos_id):
            n = min(k, max_new_tokens - len(out) - 1)
            drafts: list[int] = []
            for _ in range(n):
                logits = draft(input_ids=torch.tensor([ids + drafts])).logits[:, -1]  # [1, V]
                drafts.append(int(logits.argmax(-1)))
            q = torch.nn.functional.one_hot(torch.tensor(drafts, dtype=torch.long), vocab)
            # logits: [n + 1, V] at the positions of the drafts and the one after them
            logits = target(input_ids=torch.tensor([ids + drafts])).logits[0, -(n + 1) :]
            p = probs_from_logits(logits, greedy * (n + 1))  # one-hot argmax rows
            ((tokens, _),) = verify_drafts(
                torch.tensor([drafts], dtype=torch.long).view(1, n),
                q.float().view(1, n, vocab),
                p[None],
                [make_generator(0)],
            )
            passes += 1
            proposed += n
            accepted += len(tokens) - 1
            if eos_id in tokens:
                tokens = tokens[: tokens.index(eos_id) + 1]
            ids += tokens
            out += tokens
    return out, accepted, proposed, passes


def load(path: Path) -> LlamaForCausalLM:
    model = LlamaForCausalLM.from_pretrained(str(path), dtype=torch.float32, local_files_only=True)
    model.eval()
    return model


def evaluate(tok: ByteTokenizer, num_prompts: int = 8, max_new_tokens: int = 128) -> dict[str, Any]:
    target, draft = load(OUT_DIR / "target"), load(OUT_DIR / "draft")
    accepted = proposed = passes = generated = 0
    sample_text = ""
    for i, prompt in enumerate(prompts(num_prompts=num_prompts, seed=PROMPT_SEED)):
        out, acc, prop, tp = greedy_speculative(
            target, draft, [tok.bos_id, *tok.encode(prompt)], max_new_tokens=max_new_tokens,
            eos_id=tok.eos_id,
        )  # fmt: skip
        accepted, proposed, passes, generated = (
            accepted + acc, proposed + prop, passes + tp, generated + len(out)
        )  # fmt: skip
        if i == 0:
            sample_text = prompt + tok.decode(out)
    return {
        "acceptance_rate": round(accepted / proposed, 3),
        "tokens_per_target_pass": round(generated / passes, 3),
        "num_prompts": num_prompts,
        "max_new_tokens": max_new_tokens,
        "sample": sample_text,
    }


def write_readme(stats: dict[str, Any]) -> None:
    """Describe how the shipped weights were made, from the recorded training statistics."""
    spec = stats["speculative_greedy_k4"]
    lines = [
        "# Demo model pair",
        "",
        "Generated by this repository: `python scripts/train_demo_models.py` trains both models",
        "from random initialisation on the CPU (2 threads) and writes this directory. No outside",
        "weights or data are involved.",
        "",
        "- Data: `auditlog.engine.corpus.generate_corpus(num_conversations="
        f"{stats['corpus']['conversations']}, seed={stats['corpus']['seed']})`, templated",
        "  customer-support conversations, encoded as `<bos> text <eos>` per conversation with the",
        f"  byte-level tokenizer ({stats['corpus']['tokens']} tokens); random windows of "
        f"{stats['corpus']['seq_len']} tokens, batch {stats['corpus']['batch_size']}.",
        "- Architecture: Hugging Face `LlamaForCausalLM` (RMSNorm, RoPE, SwiGLU, grouped-query",
        "  attention), weights in bfloat16 (`model.safetensors`), `config.json`, `tokenizer.json`",
        "  (identical in both directories: 256 byte tokens, then `<bos>` 256, `<eos>` 257,",
        "  `<pad>` 258).",
        "",
        "| model | hidden | layers | heads / KV heads | MLP | parameters | steps | peak lr "
        "| seed | held-out loss (nats/byte) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("target", "draft"):
        m = stats[name]
        sh = m["shape"]
        lines.append(
            f"| {name} | {sh['hidden_size']} | {sh['num_hidden_layers']} | "
            f"{sh['num_attention_heads']} / {sh['num_key_value_heads']} | "
            f"{sh['intermediate_size']} | {m['num_parameters']:,} | {m['steps']} | {m['lr']} | "
            f"{m['seed']} | {m['valid_loss']} |"
        )
    lines += [
        "",
        f"Greedy speculative decoding with k = {SPEC_K} on {spec['num_prompts']} held-out corpus",
        f"prompts ({spec['max_new_tokens']} new tokens each): draft acceptance rate "
        f"{spec['acceptance_rate']}, {spec['tokens_per_target_pass']} tokens per target pass.",
        "",
        "Greedy sample (prompt, then the target's continuation):",
        "",
        "```",
        spec["sample"].rstrip("\n"),
        "```",
        "",
        "Limits: training is capped to about half an hour of a shared 2-core CPU, so the target",
        "is under-trained (its held-out loss is no better than the draft's): both reproduce the",
        "dialogue shape and phrasing, but neither reliably copies slot values (order numbers,",
        "amounts, names) from earlier turns. They exist to exercise the engine, not to be useful.",
        "",
        "`training.json` holds the same figures as recorded by the script.",
        "",
    ]
    (OUT_DIR / "README.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["target", "draft", "eval"], default=None)
    args = parser.parse_args()
    torch.set_num_threads(NUM_THREADS)
    tok = ByteTokenizer.byte_level()
    train_ids = token_stream(tok, num=TRAIN_CONVERSATIONS, seed=CORPUS_SEED)
    valid_ids = token_stream(tok, num=100, seed=VALID_SEED)
    stats_path = OUT_DIR / "training.json"
    stats: dict[str, Any] = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    for recipe in (TARGET, DRAFT):
        if args.only not in (None, recipe.name):
            continue
        start = time.monotonic()
        model = train(recipe, tok, train_ids)
        stats[recipe.name] = {
            **asdict(recipe),
            "train_minutes": round((time.monotonic() - start) / 60, 1),
            "valid_loss": round(eval_loss(model, valid_ids), 4),
            "num_parameters": sum(p.numel() for p in model.parameters()),
        }
        save(model, tok, OUT_DIR / recipe.name)
    stats["corpus"] = {
        "seed": CORPUS_SEED,
        "conversations": TRAIN_CONVERSATIONS,
        "tokens": train_ids.numel(),
        "seq_len": SEQ_LEN,
        "batch_size": BATCH_SIZE,
    }
    stats["speculative_greedy_k4"] = evaluate(tok)
    stats_path.write_text(json.dumps(stats, indent=2) + "\n")
    write_readme(stats)
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    main()
