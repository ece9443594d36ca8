"""C20: evidence bundles: export, offline verification, tampering of every field class,
deterministic bytes, and the ``export`` / ``verify-bundle`` commands."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from api_helpers import ENGINE_ORIGIN, HOSTILE_PROMPT, World, fixed_signer
from typer.testing import CliRunner

from auditlog.bundle import KeyTrust, verify_bundle
from auditlog.cli import app
from auditlog.errors import FormatError, VerificationError
from auditlog.events import BatchStep, FinishReason, Provenance, RequestFinished, RequestStarted
from auditlog.ledger import canonical_json, parse_checkpoint, sign_checkpoint
from auditlog.recorder import AuditRecorder
from auditlog.synthetic import TARGET

Mutation = Callable[[dict[str, Any]], None]


def _export(world: World, request_id: str, who: str = "auditor0") -> bytes:
    response = world.client.get(f"/v1/requests/{request_id}/bundle", headers=world.headers(who))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.auditlog.bundle+json"
    return response.content


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _edit_header(record: dict[str, Any], **changes: Any) -> None:
    header = orjson.loads(base64.b64decode(record["body"]))
    header.update(changes)
    record["body"] = _b64(canonical_json(header))


def test_round_trip_verifies_offline_with_trusted_and_embedded_keys(world: World) -> None:
    request_id = "req-00000"  # the request with the hostile prompt
    data = _export(world, request_id, who="admin")
    report = verify_bundle(data, trusted_keys=[world.engine_signer.verifier_key])
    assert report.trust is KeyTrust.TRUSTED
    assert report.request_id == request_id
    assert report.tenant == world.truth[request_id].tenant
    assert report.log == ENGINE_ORIGIN
    assert [t.token_id for t in report.transcript.tokens] == world.truth[request_id].token_ids
    assert report.transcript.prompt_text == HOSTILE_PROMPT
    embedded = verify_bundle(data)
    assert embedded.trust is KeyTrust.UNTRUSTED  # only the bundle's own keys vouch for it


def test_same_request_same_bytes_even_after_the_log_grows(world: World, tmp_path: Path) -> None:
    """C20: a bundle is pinned to the earliest checkpoint covering the trail."""
    request_id = world.request_of("tenant-0")
    first = _export(world, request_id)
    assert _export(world, request_id, who="admin") == first
    with AuditRecorder.open(
        world.db_url,
        origin=ENGINE_ORIGIN,
        signers=[world.engine_signer],
        spool_path=tmp_path / "late.jsonl",
    ) as recorder:
        recorder.record(
            RequestStarted(
                request_id="late-1",
                tenant="tenant-0",
                principal="p",
                prompt_token_ids=(1,),
                prompt_text="later",
                params={},
                target=TARGET,
                draft=None,
                ts=1,
            )
        )
        recorder.record(
            BatchStep(
                step_id=10_000,
                ts=2,
                token_ids=(5,),
                request_ids=("late-1",),
                provenance=(Provenance.TARGET,),
            )
        )
        recorder.record(
            RequestFinished(
                request_id="late-1", reason=FinishReason.STOP, n_generated=1, n_delivered=1, ts=3
            )
        )
    assert _export(world, request_id) == first
    assert verify_bundle(_export(world, "late-1"), trusted_keys=[world.engine_signer.verifier_key])


def _tamper_cases(world: World) -> dict[str, tuple[Mutation, str]]:
    attacker = fixed_signer("attacker.example/engine")

    def resign_as_attacker(b: dict[str, Any]) -> None:
        cp = parse_checkpoint(b["checkpoint"].split("\n\n")[0] + "\n")
        b["checkpoint"] = sign_checkpoint(cp, [attacker])
        b["keys"] = [attacker.verifier_key]

    def drop(index: int) -> Mutation:
        return lambda b: b["records"].pop(index)

    def swap(b: dict[str, Any]) -> None:
        r = b["records"]
        r[1], r[2] = r[2], r[1]

    def flip_proof(b: dict[str, Any]) -> None:
        proof = base64.b64decode(b["records"][1]["proof"][0])
        b["records"][1]["proof"][0] = _b64(bytes([proof[0] ^ 1]) + proof[1:])

    def bump_size(b: dict[str, Any]) -> None:
        lines = b["checkpoint"].split("\n")
        lines[1] = str(int(lines[1]) + 1)
        b["checkpoint"] = "\n".join(lines)

    return {
        "version": (lambda b: b.update(v=2), "unsupported bundle version: expected 1, got 2"),
        "format": (lambda b: b.update(format="other"), "not an auditlog bundle"),
        "extra member": (lambda b: b.update(extra=1), "bundle members: expected"),
        "request id": (lambda b: b.update(request_id="req-other"), "request_id mismatch"),
        "log": (lambda b: b.update(log="other.example/log"), "checkpoint origin mismatch"),
        "body base64": (
            lambda b: b["records"][0].update(body="@@@"),
            "records\\[0\\].body: not valid base64",
        ),
        "header field": (
            lambda b: _edit_header(b["records"][0], principal="someone-else"),
            "req_seq 0 .*inclusion proof failed",
        ),
        "header seq": (
            lambda b: b["records"][0].update(seq=b["records"][0]["seq"] + 1),
            "seq mismatch",
        ),
        "payload": (
            lambda b: b["records"][0].update(payload=_b64(b'{"prompt_text":"forged"}')),
            "req_seq 0 .*payload digest mismatch",
        ),
        "payload added": (
            lambda b: b["records"][-1].update(payload=_b64(b"{}")),
            "payload present but the header commits to none",
        ),
        "proof hash": (flip_proof, "req_seq 1 .*inclusion proof failed"),
        "proof length": (
            lambda b: b["records"][1]["proof"].pop(),
            "req_seq 1 .*inclusion proof failed",
        ),
        "record deleted": (drop(1), "req_seq 1 .*req_seq mismatch: expected 1, got 2"),
        "end deleted": (drop(-1), "trail is incomplete"),
        "start deleted": (drop(0), "req_seq 0 .*req_seq mismatch: expected 0, got 1"),
        "reordered": (swap, "req_seq 1 .*req_seq mismatch: expected 1, got 2"),
        "checkpoint text": (bump_size, "checkpoint is not signed by a trusted key"),
        "re-signed by another key": (
            resign_as_attacker,
            "checkpoint is not signed by a trusted key",
        ),
        "non-canonical": (None, "not in canonical form"),  # type: ignore[dict-item]
    }


def test_every_tampered_field_class_fails_with_a_specific_message(world: World) -> None:
    request_id = world.request_of("tenant-0")
    original = _export(world, request_id)
    trusted = [world.engine_signer.verifier_key]
    assert len(orjson.loads(original)["records"]) >= 4, "need start, 2+ tokens and end"
    for name, (mutate, message) in _tamper_cases(world).items():
        if mutate is None:
            data = orjson.dumps(orjson.loads(original), option=orjson.OPT_INDENT_2)
        else:
            bundle = orjson.loads(original)
            mutate(bundle)
            data = canonical_json(bundle)
        try:
            verify_bundle(data, trusted_keys=trusted)
        except VerificationError as exc:
            assert re.search(message, str(exc)), f"{name}: unexpected message {exc}"
        else:
            pytest.fail(f"tampered bundle ({name}) verified")


def test_untrusted_keys_are_only_self_consistent(world: World) -> None:
    """A bundle re-signed by whoever holds it still passes on its embedded keys: that is why the
    report says "untrusted", and why a trusted key refuses it."""
    bundle = orjson.loads(_export(world, world.request_of("tenant-0")))
    attacker = fixed_signer("attacker.example/engine")
    cp = parse_checkpoint(bundle["checkpoint"].split("\n\n")[0] + "\n")
    bundle["checkpoint"] = sign_checkpoint(cp, [attacker])
    bundle["keys"] = [attacker.verifier_key]
    forged = canonical_json(bundle)
    assert verify_bundle(forged).trust is KeyTrust.UNTRUSTED
    with pytest.raises(VerificationError, match="not signed by a trusted key"):
        verify_bundle(forged, trusted_keys=[world.engine_signer.verifier_key])


def test_absent_payload_fails(world: World) -> None:
    """An absent payload under a digest is a failure until a signed erasure record kind exists
    (docs/FORMAT.md 3.4, docs/TRUST.md): deleting content must not verify."""
    bundle = orjson.loads(_export(world, world.request_of("tenant-0")))
    bundle["records"][0]["payload"] = None
    with pytest.raises(VerificationError, match=r"req_seq 0 .*payload absent"):
        verify_bundle(canonical_json(bundle), trusted_keys=[world.engine_signer.verifier_key])


def test_malformed_trusted_key_is_a_usage_error(world: World) -> None:
    with pytest.raises(FormatError, match="verifier key 0 is malformed"):
        verify_bundle(_export(world, world.request_of("tenant-0")), trusted_keys=["nope"])


def _cli() -> typer.Typer:
    """The real command: errors become exit codes in its root group, in one place."""
    return app


def test_export_and_verify_bundle_commands(world: World, tmp_path: Path) -> None:
    """``auditlog export`` gives the API's bytes; ``verify-bundle`` exits 0 / 1 / 2."""
    request_id = world.request_of("tenant-1")
    runner = CliRunner()
    out = tmp_path / "trail.bundle"
    result = runner.invoke(
        _cli(), ["export", "--db", world.db_url, "--request", request_id, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == _export(world, request_id, who="auditor12")
    html = tmp_path / "trail.html"
    result = runner.invoke(
        _cli(),
        [
            "export",
            "--db",
            world.db_url,
            "--request",
            request_id,
            "--out",
            str(html),
            "--format",
            "html",
            "--key",
            world.engine_signer.verifier_key,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Verification: <strong>anchored</strong> (trusted" in html.read_text()

    key = world.engine_signer.verifier_key
    ok = runner.invoke(_cli(), ["verify-bundle", str(out), "--key", key, "--json"])
    assert ok.exit_code == 0, ok.output
    assert orjson.loads(ok.stdout)["trust"] == "trusted"
    key_file = tmp_path / "keys.txt"
    key_file.write_text(key + "\n")
    assert runner.invoke(_cli(), ["verify-bundle", str(out), "--key", str(key_file)]).exit_code == 0

    bundle = orjson.loads(out.read_bytes())
    bundle["records"][0]["payload"] = _b64(b'{"prompt_text":"forged"}')
    bad = tmp_path / "tampered.bundle"
    bad.write_bytes(canonical_json(bundle))
    failed = runner.invoke(_cli(), ["verify-bundle", str(bad), "--key", key, "--json"])
    assert failed.exit_code == 1
    assert "payload digest mismatch" in orjson.loads(failed.stdout)["error"]
    assert runner.invoke(_cli(), ["verify-bundle", str(out), "--key", "garbage"]).exit_code == 2
    assert runner.invoke(_cli(), ["verify-bundle", str(tmp_path / "missing")]).exit_code == 2
