"""The middleware around the app that ``transformers serve`` builds (a server we do not own).

The app comes from ``transformers.cli.serving`` with a tiny random-weight Llama saved to a tmp
directory (no download). Two adjustments, both to load offline on CPU without ``accelerate``: the
model manager is built without a forced model and its ``device`` set to None (no ``device_map``),
then the model is loaded by path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

torch = pytest.importorskip("torch")
serving = pytest.importorskip("transformers.cli.serving.server")

from integration_fixtures import open_recorder, serve, trail, trail_text  # noqa: E402

from auditlog.integrations.asgi import TRAIL_HEADER, AuditMiddleware  # noqa: E402
from auditlog.server import hash_api_key  # noqa: E402
from auditlog.verifier import verify_database  # noqa: E402

ORIGIN = "asgi.test.invalid/hf-serve-0"
KEY = "sk-hf-1"
# No key table: the key is unmapped, so its ids live in the namespace unmapped/key:<16 hex> (C19).
CHAT_ID = f"unmapped/key:{hash_api_key(KEY)[:16]}/hf-chat-1"
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant: "
)


def _tiny_model(directory: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from auditlog.engine.tokenizer import build_byte_level_tokenizer

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=256, eos_token_id=257, pad_token_id=258,
    )  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(directory)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=build_byte_level_tokenizer(),
        bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
    )  # fmt: skip
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(directory)
    return directory


def _transformers_serve_app(model_dir: Path) -> Any:
    from transformers.cli.serving.chat_completion import ChatCompletionHandler
    from transformers.cli.serving.completion import CompletionHandler
    from transformers.cli.serving.model_manager import ModelManager
    from transformers.cli.serving.response import ResponseHandler
    from transformers.cli.serving.systemone import SystemOneHandler
    from transformers.cli.serving.transcription import TranscriptionHandler
    from transformers.cli.serving.utils import GenerationState

    mm = ModelManager(
        device="cpu", dtype="auto", trust_remote_code=False, attn_implementation=None,
        continuous_batching=False, quantization=None, model_timeout=300, force_model=None,
    )  # fmt: skip
    mm.device = None  # no device_map (loading with one requires accelerate)
    mm.force_model, mm.model_timeout = str(model_dir), -1
    mm.load_model_and_processor(mm.process_model_name(str(model_dir)))
    gs = GenerationState(continuous_batching=False, compile=False, cb_config=None)
    return serving.build_server(
        mm,
        ChatCompletionHandler(model_manager=mm, generation_state=gs, chat_template_kwargs={}),
        completion_handler=CompletionHandler(model_manager=mm, generation_state=gs),
        response_handler=ResponseHandler(model_manager=mm, generation_state=gs),
        transcription_handler=TranscriptionHandler(mm, gs),
        systemone_handler=SystemOneHandler(
            model_manager=mm, generation_state=gs, chat_template_kwargs={}, decision_config=None
        ),
        generation_state=gs,
    )


def test_transformers_serve_streamed_and_not(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_dir = _tiny_model(tmp_path / "model")
    recorder, signer, db_url, witness = open_recorder(tmp_path, ORIGIN)
    app = AuditMiddleware(_transformers_serve_app(model_dir), recorder=recorder)
    try:
        with serve(app) as url:
            c = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
            stream = c.chat.completions.create(
                model=str(model_dir), messages=[{"role": "user", "content": "hello"}],
                max_tokens=12, stream=True, extra_headers={"x-request-id": "hf-chat-1"},
            )  # fmt: skip
            chat_text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
            raw = c.completions.with_raw_response.create(
                model=str(model_dir), prompt="Customer: hi\nAgent:", max_tokens=8
            )
            cmpl_id = raw.headers[TRAIL_HEADER.decode()]
            cmpl_text = raw.parse().choices[0].text
            for rid in (CHAT_ID, cmpl_id):
                recorder.wait_durable(rid, 2**62, timeout=30)
            # C23: transformers serve also answers POST /v1/responses; unaudited, so refused
            auth = {"authorization": f"Bearer {KEY}"}
            body = {"model": str(model_dir), "input": "hello", "max_output_tokens": 4}
            r = httpx.post(f"{url}/v1/responses", json=body, headers=auth, timeout=30)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["message"] == "endpoint not audited"
            assert httpx.get(f"{url}/v1/models", headers=auth, timeout=30).status_code == 200
    finally:
        recorder.close()
    chat = trail(db_url, ORIGIN, CHAT_ID)
    assert trail_text(chat) == chat_text and chat.reason in ("stop", "length")
    cmpl = trail(db_url, ORIGIN, cmpl_id)
    assert trail_text(cmpl) == cmpl_text and cmpl.reason == "length"
    assert cmpl.start["params"]["max_tokens"] == 8
    report = verify_database(db_url, keys=[signer.verifier_key], witness_dir=witness)
    assert report.ok, report.findings[:3]
