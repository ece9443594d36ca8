"""C16, C20: evidence bundles and erasure (docs/FORMAT.md 9, docs/TRUST.md 5).

A bundle exported before an erasure keeps verifying offline; one exported after it carries the
signed ``erasure`` record (with the checkpoint of the administrative log and the record's
inclusion proof) and no payloads, and ``verify-bundle`` reports the payloads "erased by record
N of LOG (reason, legal basis)" and exits 0. The attacks: the erasure record stripped, an
erasure record of another request attached, an erasure record edited to name this request,
payloads nulled with no erasure record: each exits 1. On SQLite and PostgreSQL, against
records written by the real recorder and an erasure made by the real ``erase``.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_sealed_payloads import ADMIN, SECRET, _erase, record_sealed
from typer.testing import CliRunner

from auditlog.cli import app
from auditlog.ledger.canonical import canonical_json


@pytest.fixture
def sealed(db_url: str, tmp_path: Path) -> dict[str, Any]:
    """r-a1, r-a2 (acme), r-b1 (beta), recorded sealed; an administrative log key."""
    return record_sealed(db_url, tmp_path)


def _export(
    rec: dict[str, Any], tmp: Path, name: str, request_id: str = "r-a1", *more: str
) -> Path:
    out = tmp / name
    args = ["export", "--db", rec["db"], "--request", request_id, "--out", str(out), *more]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def _verify(path: Path, keys: list[str], *, as_json: bool = True) -> tuple[int, Any]:
    args = ["verify-bundle", str(path)]
    for key in keys:
        args += ["--key", key]
    result = CliRunner().invoke(app, [*args, "--json"] if as_json else args)
    assert result.exit_code != 2, result.output
    return result.exit_code, orjson.loads(result.stdout) if as_json else result.output


def _rewrite(path: Path, change: Any) -> Path:
    """The bundle with ``change(obj)`` applied, re-encoded canonically (an attacker's edit)."""
    obj = orjson.loads(path.read_bytes())
    change(obj)
    out = path.with_name("forged-" + path.name)
    out.write_bytes(canonical_json(obj))
    return out


def test_before_erasure_still_verifies_after_erasure_names_it(
    sealed: dict[str, Any], tmp_path: Path
) -> None:
    before = _export(sealed, tmp_path, "before.json")
    assert SECRET.encode() not in before.read_bytes()
    assert "erasure" not in orjson.loads(before.read_bytes())
    result = _erase(sealed, request_ids=["r-a1"])
    after = _export(sealed, tmp_path, "after.json")
    assert _export(sealed, tmp_path, "again.json").read_bytes() == after.read_bytes()  # C20
    # the bundle exported before the erasure is unchanged evidence and still verifies offline
    code, report = _verify(before, sealed["keys"][:1])
    assert code == 0 and report["status"] == "intact" and report["erasure"] is None, report
    # the one exported after it shows the erasure, and verifies with both logs' keys
    obj = orjson.loads(after.read_bytes())
    assert all(r["payload"] is None for r in obj["records"])
    assert obj["erasure"]["log"] == ADMIN and obj["erasure"]["seq"] == result.seq
    code, report = _verify(after, sealed["keys"])
    assert code == 0 and report["status"] == "intact", report
    assert report["erasure"] == {
        "log": ADMIN, "seq": result.seq, "ts": report["erasure"]["ts"],
        "principal": "dpo@example", "reason": "data subject request",
        "legal_basis": "GDPR Art. 17(1)(a)", "holds_checked": False,
    }  # fmt: skip
    headers = [orjson.loads(base64.b64decode(r["body"])) for r in obj["records"]]
    committed = [h["seq"] for h in headers if h["payload"] is not None]
    assert report["erased_payloads"] == committed and len(committed) == 2  # start, tokens
    code, text = _verify(after, sealed["keys"], as_json=False)
    assert code == 0
    assert (
        f"erased by record {result.seq} of {ADMIN} (data subject request, GDPR Art. 17(1)(a);"
        in text
    )
    # C15: a bundle cannot show the holds in force at the erasure; it says so, and where to look
    assert "whether a legal hold covered the request when it was erased" in text
    assert "`auditlog verify` of the administrative log checks it (erasure.held)" in text


def test_erasure_under_an_untrusted_key_proves_nothing(
    sealed: dict[str, Any], tmp_path: Path
) -> None:
    """Only the request log's key given: the erasure's checkpoint is checked against the keys
    embedded with it, which anyone can make: unproven (3), never intact."""
    _erase(sealed, request_ids=["r-a1"])
    after = _export(sealed, tmp_path, "after.json")
    code, report = _verify(after, sealed["keys"][:1])
    assert code == 3 and report["status"] == "unproven", report
    assert any(ADMIN in note for note in report["notes"])


def test_stripped_erasure_record_fails(sealed: dict[str, Any], tmp_path: Path) -> None:
    _erase(sealed, request_ids=["r-a1"])
    forged = _rewrite(_export(sealed, tmp_path, "after.json"), lambda o: o.pop("erasure"))
    code, report = _verify(forged, sealed["keys"])
    assert code == 1 and "payload absent" in report["error"], report
    assert "no erasure record" in report["error"]


def test_payloads_nulled_without_any_erasure_fail(sealed: dict[str, Any], tmp_path: Path) -> None:
    def null(obj: dict[str, Any]) -> None:
        for record in obj["records"]:
            record["payload"] = None

    forged = _rewrite(_export(sealed, tmp_path, "before.json"), null)
    code, report = _verify(forged, sealed["keys"])
    assert code == 1 and "payload absent" in report["error"], report


def test_erasure_record_of_another_request_fails(sealed: dict[str, Any], tmp_path: Path) -> None:
    """r-a1 was erased, r-a2 was not: r-a2's bundle with its payloads nulled and r-a1's
    (genuine, signed) erasure record attached fails, naming the request."""
    _erase(sealed, request_ids=["r-a1"])
    erasure = orjson.loads(_export(sealed, tmp_path, "a1.json").read_bytes())["erasure"]

    def hide(obj: dict[str, Any]) -> None:
        for record in obj["records"]:
            record["payload"] = None
        obj["erasure"] = erasure

    other = _export(sealed, tmp_path, "a2.json", "r-a2")
    assert "erasure" not in orjson.loads(other.read_bytes())
    code, report = _verify(_rewrite(other, hide), sealed["keys"])
    assert code == 1 and "does not name request 'r-a2'" in report["error"], report


def test_erasure_record_edited_to_name_this_request_fails(
    sealed: dict[str, Any], tmp_path: Path
) -> None:
    """The erasure record's header rewritten to name r-a2: its leaf no longer leads to the
    signed root (the inclusion proof fails); re-signing needs the administrative log's key."""
    _erase(sealed, request_ids=["r-a1"])
    erasure = orjson.loads(_export(sealed, tmp_path, "a1.json").read_bytes())["erasure"]
    header = orjson.loads(base64.b64decode(erasure["body"]))
    header["erased"] = [{"log": header["erased"][0]["log"], "request_id": "r-a2"}]
    erasure["body"] = base64.b64encode(canonical_json(header)).decode()

    def hide(obj: dict[str, Any]) -> None:
        for record in obj["records"]:
            record["payload"] = None
        obj["erasure"] = erasure

    forged = _rewrite(_export(sealed, tmp_path, "a2.json", "r-a2"), hide)
    code, report = _verify(forged, sealed["keys"])
    assert code == 1 and "inclusion proof failed" in report["error"], report


@pytest.mark.parametrize("member", ["seq", "kind"])
def test_erasure_member_that_is_not_the_signed_record_fails(
    sealed: dict[str, Any], tmp_path: Path, member: str
) -> None:
    """The member's ``seq`` moved, or the record is not an erasure: refused."""
    _erase(sealed, request_ids=["r-a1"])
    after = _export(sealed, tmp_path, "after.json")

    def edit(obj: dict[str, Any]) -> None:
        if member == "seq":
            obj["erasure"]["seq"] += 1
        else:  # another record of the request log in its place (a request.start)
            obj["erasure"]["body"] = obj["records"][0]["body"]

    code, report = _verify(_rewrite(after, edit), sealed["keys"])
    assert code == 1 and "mismatch" in report["error"], report


def test_html_export_shows_the_erasure(sealed: dict[str, Any], tmp_path: Path) -> None:
    """C16: the HTML export names the erasure record when it is proven under a ``--key`` (the
    administrative key); with the engine's key alone it says the erasure is not proven."""
    result = _erase(sealed, request_ids=["r-a1"])
    engine_key, admin_key = sealed["keys"]
    page = _export(sealed, tmp_path, "t.html", "r-a1", "--format", "html", "--key", engine_key,
                   "--key", admin_key).read_text()  # fmt: skip
    assert f"erased (record {result.seq} of {ADMIN}, data subject request)" in page
    assert SECRET not in page
    unproven = _export(sealed, tmp_path, "u.html", "r-a1", "--format", "html", "--key",
                       engine_key).read_text()  # fmt: skip
    assert "erased (record" not in unproven and SECRET not in unproven
    assert "no checkpoint signed by a trusted key covers it" in unproven


def test_api_bundle_after_erasure_carries_the_erasure(
    sealed: dict[str, Any], tmp_path: Path
) -> None:
    """C20 via the auditor API (``GET /v1/requests/{id}/bundle``): the same bytes as
    ``auditlog export``, before and after the erasure, and both verify."""
    from fastapi.testclient import TestClient

    from auditlog.api import ApiSettings, Role, create_app
    from auditlog.api.keys import create_key
    from auditlog.bundle import verify_bundle
    from auditlog.ledger import Signer
    from auditlog.store import create_db_engine

    key_file = tmp_path / "api.key"
    key_file.write_text(Signer.generate("test.example/api").key_string + "\n")
    settings = ApiSettings(
        db_url=sealed["db"], api_origin="test.example/api", api_signing_key=key_file,
        api_trusted_keys=sealed["keys"],
    )  # fmt: skip
    engine = create_db_engine(sealed["db"])
    with engine.begin() as conn:
        token = create_key(conn, role=Role.ADMIN, label="admin").token
    headers = {"Authorization": f"Bearer {token}", "X-Audit-Reason": "erasure check"}
    try:
        with TestClient(create_app(settings, engine=engine)) as client:

            def fetch() -> bytes:
                r = client.get("/v1/requests/r-a1/bundle", headers=headers)
                assert r.status_code == 200, r.text
                return r.content

            before = fetch()
            assert before == _export(sealed, tmp_path, "b.json", "r-a1", "--key",
                                     sealed["keys"][0]).read_bytes()  # fmt: skip
            result = _erase(sealed, request_ids=["r-a1"])
            after = fetch()
    finally:
        engine.dispose()
    assert after != before
    assert verify_bundle(before, trusted_keys=sealed["keys"]).erasure is None
    report = verify_bundle(after, trusted_keys=sealed["keys"])
    assert report.erasure is not None and report.erasure.seq == result.seq
    assert report.erasure.legal_basis == "GDPR Art. 17(1)(a)" and report.erased_payloads
