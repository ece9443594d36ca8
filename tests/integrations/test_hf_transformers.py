"""HF transformers continuous batching and assisted generation, recorded as auditlog events.

Tiny random-weight Llama models built from configs (no download), on CPU. Each trail rebuilt from
the database MUST hold exactly the tokens transformers returned, with provenance and drafts (C6),
and every token of a physical step lands in exactly one trail (C11).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from integration_fixtures import open_recorder, trail  # noqa: E402

from auditlog.events import ModelRef, Provenance  # noqa: E402
from auditlog.integrations.hf_transformers import HFAuditAdapter, step_provenance  # noqa: E402
from auditlog.verifier import verify_database  # noqa: E402

EOS = 257


def _model(layers: int, hidden: int, seed: int, tmp: Path) -> tuple[Any, ModelRef]:
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=259, hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=256, bos_token_id=256, eos_token_id=EOS, pad_token_id=258,
    )  # fmt: skip
    model = LlamaForCausalLM(cfg).eval()
    model.generation_config = GenerationConfig(
        do_sample=False, eos_token_id=EOS, pad_token_id=258, max_new_tokens=8
    )
    path = tmp / f"m{seed}"
    model.save_pretrained(path)
    digest = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    return model, ModelRef(name=f"tiny-{seed}", weights_sha256=digest, tokenizer_sha256="0" * 64)


def test_step_provenance_rules() -> None:
    d, a, r, b, t = (Provenance.DRAFT_ACCEPTED, Provenance.DRAFT_ACCEPTED,
                     Provenance.TARGET_RECOVERED, Provenance.BONUS, Provenance.TARGET)  # fmt: skip
    assert step_provenance([5, 6, 7], [5, 6, 9]) == [d, a, r]
    assert step_provenance([5, 6], [5, 6, 1]) == [d, a, b]
    assert step_provenance([5, 6], [4]) == [r]
    assert step_provenance([], [4]) == [t]


def test_continuous_batching_is_recorded_per_request(tmp_path: Path, db_url: str) -> None:
    model, ref = _model(2, 64, 0, tmp_path)
    recorder, signer, db_url, witness = open_recorder(tmp_path, "hf.test.invalid/cb-0", db_url)
    adapter = HFAuditAdapter(recorder.record, target=ref)
    prompts = [[256, 72, 105], [256, 65, 66, 67, 68, 69], [256, 1], [256, 50, 51, 52]]
    try:
        results = adapter.generate_batch(
            model, prompts, tenant="acme-bank", principal="batch@acme", max_new_tokens=6
        )
    finally:
        recorder.close()
    assert len(results) == len(prompts)
    step_sets = []
    for request_id, out in results.items():
        t = trail(db_url, "hf.test.invalid/cb-0", request_id)
        assert t.token_ids == list(out.generated_tokens), request_id
        assert t.prompt_token_ids == list(out.prompt_ids)
        assert t.reason in ("length", "stop") and t.tenant == "acme-bank"
        assert t.start["target"]["weights_sha256"] == ref.weights_sha256
        step_sets.append(set(t.steps))
    assert any(a & b for i, a in enumerate(step_sets) for b in step_sets[i + 1 :]), (
        "no physical step carried tokens of two requests"
    )
    report = verify_database(db_url, keys=[signer.verifier_key], witness_dir=witness)
    assert report.ok, report.findings[:3]


@pytest.mark.parametrize("same_assistant", [True, False], ids=["copy", "smaller"])
def test_assisted_generation_records_drafts_and_provenance(
    tmp_path: Path, same_assistant: bool
) -> None:
    target, ref = _model(2, 64, 0, tmp_path)
    if same_assistant:
        assistant, draft_ref = _model(2, 64, 0, tmp_path / "copy")
    else:
        assistant, draft_ref = _model(1, 32, 1, tmp_path)
    origin = "hf.test.invalid/assisted-0"
    recorder, signer, db_url, witness = open_recorder(tmp_path, origin)
    adapter = HFAuditAdapter(recorder.record, target=ref, draft=draft_ref)
    prompt = torch.tensor([[256, 67, 117, 115, 116]])
    try:
        out = adapter.assisted_generate(
            target, prompt, assistant_model=assistant, request_id="assist-1",
            tenant="globex-health", principal="dr@globex", max_new_tokens=16,
        )  # fmt: skip
    finally:
        recorder.close()
    generated = out[0, prompt.shape[1] :].tolist()
    t = trail(db_url, origin, "assist-1")
    assert t.token_ids == generated
    assert t.start["draft"]["name"] == draft_ref.name
    assert t.drafts, "no draft proposals recorded"
    accepted = sum(p is Provenance.DRAFT_ACCEPTED for p in t.provenance)
    if same_assistant:
        assert accepted > 0 and Provenance.BONUS in t.provenance
    # every accepted token equals the proposal at its position in its step
    proposals = dict(t.drafts)
    for i, (token, prov, step) in enumerate(zip(t.token_ids, t.provenance, t.steps, strict=True)):
        if prov is Provenance.DRAFT_ACCEPTED:
            offset = t.steps[:i].count(step)
            assert proposals[step][offset] == token
    report = verify_database(db_url, keys=[signer.verifier_key], witness_dir=witness)
    assert report.ok, report.findings[:3]


def test_prompt_over_the_payload_limit_is_refused_before_generation(
    tmp_path: Path, db_url: str
) -> None:
    """Payload limit (recorder/limits.py): the adapter's prompt over the recorder's
    ``max_payload_bytes`` raises ``PayloadTooLargeError`` before transformers generates, and
    nothing of it is stored; the recorder records the next request."""
    from auditlog.errors import NotFoundError
    from auditlog.ledger import DirectoryWitness
    from auditlog.recorder import AuditRecorder, PayloadTooLargeError

    target, ref = _model(2, 64, 0, tmp_path)
    assistant, draft_ref = _model(1, 32, 1, tmp_path)
    origin = "hf.test.invalid/limit-0"
    recorder, signer, db_url, witness = open_recorder(tmp_path, origin, db_url)
    recorder.close()  # reopen the same log with a small limit
    recorder = AuditRecorder.open(
        db_url, origin=origin, signers=[signer], max_payload_bytes=16,
        spool_path=tmp_path / "limit.spool", witnesses=[DirectoryWitness(witness)],
    )  # fmt: skip
    adapter = HFAuditAdapter(recorder.record, target=ref, draft=draft_ref)
    kwargs = {"assistant_model": assistant, "tenant": "acme-bank", "principal": "p",
              "max_new_tokens": 4}  # fmt: skip
    try:
        with pytest.raises(PayloadTooLargeError, match="over the limit of 16 bytes"):
            adapter.assisted_generate(
                target, torch.tensor([[256] + [65] * 16]), request_id="too-big", **kwargs
            )
        adapter.assisted_generate(
            target, torch.tensor([[256] + [66] * 15]), request_id="fits", **kwargs
        )
    finally:
        recorder.close()
    assert trail(db_url, origin, "fits").end is not None
    with pytest.raises(NotFoundError, match="too-big"):
        trail(db_url, origin, "too-big", timeout=0)
    report = verify_database(db_url, keys=[signer.verifier_key])
    assert report.ok, report.findings[:3]
