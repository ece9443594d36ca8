"""Real vLLM (offline ``LLM``, CPU) with the auditlog plugin, with and without a draft model.

The run happens in a subprocess (``run_offline.py``, main guard for vLLM's spawn). Five requests
with different sampling parameters (greedy, seeded, top-p, max_tokens cuts) share the batch.
Each trail MUST hold exactly the prompt and tokens the caller got (C2, C6), provenance MUST match
vLLM's own per-step acceptance counts (C6), every step manifest MUST equal its tokens records and
some step MUST hold tokens of several requests (C11), the model identities MUST be the weights'
digests (C4), the seed and sampling parameters MUST be recorded (C5), ``auditlog verify``
MUST exit 0 (C8), and one OpenTelemetry GenAI span per request MUST name its end record.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from vllm_checks import (
    auditlog_verify,
    check_spec_provenance,
    check_step_manifests,
    outputs_of,
    trails_by_external_id,
)
from vllm_models import make_draft_from, make_model

from auditlog.ledger import Signer
from auditlog.trails import Trail

HERE = Path(__file__).parent
ORIGIN = "vllm.test.invalid/offline"
K = 3


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    target = make_model(root / "target", layers=2, seed=0)
    return target, make_draft_from(target, root / "draft")


def _manifest_digest(model_dir: Path) -> str:
    """sha256sum *.safetensors | sha256sum, computed here independently of the plugin."""
    lines = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
        for p in sorted(model_dir.glob("*.safetensors"))
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def _check_spans(spans: list[dict[str, Any]], trails: dict[str, Trail]) -> None:
    """One OpenTelemetry GenAI span per request, naming its end record, without content."""
    by_id = {t.request_id: t for t in trails.values()}
    assert sorted(s["gen_ai.response.id"] for s in spans) == sorted(by_id)
    for span in spans:
        t = by_id[span["gen_ai.response.id"]]
        assert t.end is not None
        assert span["gen_ai.operation.name"] == "text_completion"
        assert span["gen_ai.request.model"] == t.start["target"]["name"]
        assert span["gen_ai.usage.input_tokens"] == len(t.prompt_token_ids)
        assert span["gen_ai.usage.output_tokens"] == len(t.token_ids)
        assert span["gen_ai.response.finish_reasons"] == [t.end["reason"]]
        assert span.get("gen_ai.request.seed") == t.start["params"]["seed"]
        assert span["auditlog.log.origin"] == ORIGIN
        assert span["auditlog.record.leaf_index"] == t.records[-1].seq
        assert not {"gen_ai.input.messages", "gen_ai.output.messages"} & span.keys()


@pytest.mark.parametrize("speculative", [False, True], ids=["plain", "draft-k3"])
def test_offline_llm_trails_equal_outputs(
    tmp_path: Path, models: tuple[Path, Path], speculative: bool
) -> None:
    target, draft = models
    signer = Signer.generate(ORIGIN)
    key_file, witness = tmp_path / "key", tmp_path / "witness"
    key_file.write_text(signer.key_string)
    witness.mkdir()
    db_url = f"sqlite:///{tmp_path / 'audit.db'}"
    cmd = [sys.executable, str(HERE / "run_offline.py"), str(target), db_url, str(key_file),
           str(tmp_path / "spool"), "--witness", str(witness), "--otel"]  # fmt: skip
    if speculative:
        cmd += ["--draft", str(draft), "--k", str(K)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    outputs = outputs_of(done.stdout)
    trails = trails_by_external_id(db_url, ORIGIN)
    assert sorted(trails) == sorted(o["request_id"] for o in outputs)
    for out in outputs:
        t = trails[out["request_id"]]
        assert t.prompt_token_ids == out["prompt_token_ids"]
        assert t.token_ids == out["token_ids"], out["request_id"]
        assert t.end is not None and t.end["reason"] == out["finish_reason"]
        assert t.end["n_delivered"] == len(out["token_ids"])
        assert t.start["target"]["weights_sha256"] == _manifest_digest(target)
        params = t.start["params"]
        assert "seed" in params and "temperature" in params and "max_tokens" in params
        if speculative:
            assert t.start["draft"]["weights_sha256"] == _manifest_digest(draft)
            assert params["num_speculative_tokens"] == K
            check_spec_provenance(t, out["per_step_accepted"], out["per_step_drafted"])
        else:
            assert t.start["draft"] is None
            assert {str(p) for p in t.provenance} == {"target"}
    seeded = [t for t in trails.values() if t.start["params"]["seed"] is not None]
    assert {t.start["params"]["seed"] for t in seeded} == {7, 11}
    if speculative:  # the draft agrees often enough to show every label
        labels = {str(p) for t in trails.values() for p in t.provenance}
        assert labels >= {"target", "draft_accepted", "target_recovered"}, labels
    _check_spans(outputs_of(done.stdout, "spans"), trails)
    assert check_step_manifests(db_url, ORIGIN) > 0, "no step carried several requests"
    auditlog_verify(db_url, signer.verifier_key, witness)


def test_drafts_without_per_step_counts_are_refused(
    tmp_path: Path, models: tuple[Path, Path]
) -> None:
    """Without ``detailed`` acceptance counts the plugin cannot label drafted tokens: it refuses
    the first request loudly rather than record guessed provenance (C6)."""
    target, draft = models
    signer = Signer.generate(ORIGIN)
    (tmp_path / "key").write_text(signer.key_string)
    db_url = f"sqlite:///{tmp_path / 'audit.db'}"
    cmd = [sys.executable, str(HERE / "run_offline.py"), str(target), db_url,
           str(tmp_path / "key"), str(tmp_path / "spool"), "--draft", str(draft),
           "--summary-metrics"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "per_request_spec_decode_metrics='detailed'" in done.stderr
