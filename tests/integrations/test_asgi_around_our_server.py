"""The middleware around our own server: two logs (server and middleware) of one exchange agree."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from integration_fixtures import open_recorder, serve, trail, trail_text

from auditlog.engine import LLMEngine
from auditlog.engine.llm_engine import DEMO_MODELS_DIR
from auditlog.integrations.asgi import AuditMiddleware
from auditlog.ledger import Signer
from auditlog.server import ApiKeyTable, ServerSettings, create_app
from auditlog.verifier import verify_database

SERVER_ORIGIN = "server.test.invalid/engine-1"
MW_ORIGIN = "asgi.test.invalid/mw-1"
KEY = "sk-ours-1"


def _engine_factory(tmp: Path) -> object:
    if (DEMO_MODELS_DIR / "target" / "config.json").exists():
        return lambda sink: LLMEngine.demo(event_sink=sink)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from auditlog.engine.tokenizer import ByteTokenizer

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=256, eos_token_id=257, pad_token_id=258,
    )  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(tmp / "target")
    ByteTokenizer.byte_level().save(tmp / "target" / "tokenizer.json")
    return lambda sink: LLMEngine.from_pretrained(tmp / "target", event_sink=sink)


def test_middleware_trail_equals_server_trail_and_client_text(tmp_path: Path) -> None:
    mw_recorder, mw_signer, db_url, witness = open_recorder(tmp_path, MW_ORIGIN)
    server_signer = Signer.generate(SERVER_ORIGIN)
    keys = ApiKeyTable.from_plain_keys({KEY: ("acme-bank", "svc@acme-bank")})
    settings = ServerSettings(
        db_url=db_url, origin=SERVER_ORIGIN, signers=[server_signer], api_keys=keys,
        witness_dir=witness, spool_path=tmp_path / "server.spool",
        engine_factory=_engine_factory(tmp_path),  # type: ignore[arg-type]
    )  # fmt: skip
    app = AuditMiddleware(create_app(settings), recorder=mw_recorder, identities=keys)
    try:
        with serve(app) as url:
            c = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
            text = "".join(
                ch.choices[0].text
                for ch in c.completions.create(
                    model="auditlog-demo", prompt="Customer: where is my order\nAgent:",
                    max_tokens=20, temperature=0.0, stream=True,
                    extra_headers={"x-request-id": "both-1"},
                )
            )  # fmt: skip
            mw_recorder.wait_durable("acme-bank/both-1", 2**62, timeout=30)
    finally:
        mw_recorder.close()
    ours = trail(db_url, SERVER_ORIGIN, "acme-bank/both-1")
    theirs = trail(db_url, MW_ORIGIN, "acme-bank/both-1")  # both logs join on the trail id
    assert trail_text(theirs) == text
    assert theirs.tenant == ours.tenant == "acme-bank"
    assert theirs.start["client"] == ours.start["client"]
    report = verify_database(
        db_url, keys=[mw_signer.verifier_key, server_signer.verifier_key], witness_dir=witness
    )
    assert report.ok, report.findings[:3]
