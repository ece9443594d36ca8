"""Helpers of the server tests: a real uvicorn server on 127.0.0.1 (ephemeral port).

The engine is the bundled demo pair when present; otherwise a tiny random-weight Llama pair built
from configs (no download), so that the server tests do not depend on trained weights.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import uvicorn

from auditlog.engine import LLMEngine
from auditlog.engine.llm_engine import DEMO_MODELS_DIR
from auditlog.ledger import Signer
from auditlog.recorder import FailMode
from auditlog.server import ApiKeyTable, ServerSettings, create_app
from auditlog.store import create_db_engine

API_KEYS = {
    "sk-acme-0123456789": ("acme-bank", "svc-chat@acme-bank"),
    "sk-globex-abcdefgh": ("globex-health", "dr-who@globex-health"),
}
ACME_KEY = "sk-acme-0123456789"
GLOBEX_KEY = "sk-globex-abcdefgh"
MODEL = "auditlog-demo"
STARTUP_TIMEOUT_S = 120.0


def _tiny_pair(directory: Path) -> tuple[Path, Path]:
    from transformers import LlamaConfig, LlamaForCausalLM

    from auditlog.engine.tokenizer import ByteTokenizer

    paths = []
    for name, layers, seed in (("target", 2, 0), ("draft", 1, 1)):
        torch.manual_seed(seed)
        cfg = LlamaConfig(
            vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
            bos_token_id=256, eos_token_id=257, pad_token_id=258, tie_word_embeddings=False,
        )  # fmt: skip
        path = directory / name
        LlamaForCausalLM(cfg).save_pretrained(path, safe_serialization=True)
        ByteTokenizer.byte_level().save(path / "tokenizer.json")
        paths.append(path)
    return paths[0], paths[1]


@dataclass
class Release:
    request_id: str
    n_tokens: int
    durable: int  # recorder.durable_tokens(request_id) at the release point


@dataclass
class LiveServer:
    base_url: str
    db_url: str
    origin: str
    signer: Signer
    witness_dir: Path
    app: Any
    releases: list[Release] = field(default_factory=list)

    @property
    def recorder(self) -> Any:
        return self.app.state.service.recorder

    @property
    def engine(self) -> LLMEngine:
        return self.app.state.service.engine_loop.engine  # type: ignore[no-any-return]

    def wait_closed(self, request_id: str, timeout: float = 30.0) -> None:
        """Wait until the request's end record is durable and covered by a signed checkpoint
        (readers show only what a checkpoint covers)."""
        self.recorder.wait_durable(request_id, 2**62, timeout=timeout)
        self.recorder.checkpoint_now(timeout)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 with an ephemeral port; yield its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


def start_live_server(
    tmp: Path,
    engine_factory: Callable[..., LLMEngine],
    *,
    fail_mode: FailMode = FailMode.CLOSED,
    origin: str = "server.test.invalid/engine-0",
    db_url: str | None = None,
    **overrides: Any,
) -> Iterator[LiveServer]:
    db_url = db_url or f"sqlite:///{tmp / 'audit.db'}"
    witness_dir = tmp / "witness"
    witness_dir.mkdir()
    signer = Signer.generate(origin)
    live: LiveServer

    def hook(request_id: str, n_tokens: int) -> None:
        durable = live.recorder.durable_tokens(request_id) if live.recorder else -1
        live.releases.append(Release(request_id, n_tokens, durable))

    settings = ServerSettings(
        db_url=db_url,
        origin=origin,
        signers=[signer],
        api_keys=ApiKeyTable.from_plain_keys(API_KEYS),
        witness_dir=witness_dir,
        spool_path=tmp / "audit.spool",
        fail_mode=fail_mode,
        model_name=MODEL,
        engine_factory=engine_factory,
        release_hook=hook,
        **overrides,
    )
    app = create_app(settings)
    live = LiveServer(
        base_url="", db_url=db_url, origin=origin, signer=signer, witness_dir=witness_dir, app=app
    )
    with serve(app) as base_url:
        live.base_url = base_url
        yield live


def read_engine(db_url: str) -> Any:
    return create_db_engine(db_url, read_only=True)


def make_engine_factory(tmp: Path) -> Callable[..., LLMEngine]:
    """The demo pair when bundled, else a tiny random-weight pair saved under ``tmp``."""
    if (DEMO_MODELS_DIR / "target" / "config.json").exists():
        return lambda sink: LLMEngine.demo(event_sink=sink)
    target, draft = _tiny_pair(tmp)
    return lambda sink: LLMEngine.from_pretrained(target, draft, event_sink=sink)
