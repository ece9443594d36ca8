"""The console in a real browser (Debian's Chromium driven by Playwright) against a real
``auditlog api`` process on 127.0.0.1 over a store filled by the real recorder.

C17 (roles), C18 (every page view is an access record), C19 (another tenant's trail is a 404 by
URL), C20 (the downloaded bundle verifies offline). Screenshots of every page are saved as test
artifacts (see ``console_server.screenshot_dir``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import API_ORIGIN, HOSTILE_PROMPT
from console_server import ConsoleServer, console_server, screenshot_dir

from auditlog.bundle import verify_bundle
from auditlog.ledger import parse_header
from auditlog.store.db import create_db_engine
from auditlog.store.ledger_store import get_log_id, iter_records

#: Background colour of each provenance (console.css), as the browser computes it.
COLOURS = {
    "target": "rgb(230, 230, 230)",
    "draft_accepted": "rgb(204, 229, 255)",
    "target_recovered": "rgb(255, 220, 184)",
    "bonus": "rgb(210, 242, 204)",
}
#: WCAG 2.1 relative luminance and contrast ratio of two ``rgb(r, g, b)`` colours.
_LUMINANCE = """(c) => c.match(/\\d+/g).slice(0, 3).map(Number).map(v => v / 255)
  .map(v => v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4))
  .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0)"""
CONTRAST = f"""e => {{ const lum = {_LUMINANCE}; const s = getComputedStyle(e);
  const [a, b] = [lum(s.color), lum(s.backgroundColor)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); }}"""
LETTERS = {"target": "T", "draft_accepted": "D", "target_recovered": "R", "bonus": "B"}


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ConsoleServer]:
    with console_server(db_url, tmp_path) as running:
        yield running


def _sign_in(browser: Any, server: ConsoleServer, who: str) -> Any:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{server.base_url}/console")
    assert page.url.endswith("/console/sign-in")
    page.get_by_label("API key").fill(server.tokens[who])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return page


def _access_headers(server: ConsoleServer) -> list[dict[str, Any]]:
    engine = create_db_engine(server.db_url)
    try:
        with engine.connect() as conn:
            log_id = get_log_id(conn, API_ORIGIN)
            return [parse_header(bytes(r.body)) for r in iter_records(conn, log_id)]
    finally:
        engine.dispose()


def test_auditor_signs_in_searches_reads_a_trail_and_downloads_its_bundle(
    server: ConsoleServer, browser: Any, tmp_path: Path
) -> None:
    shots = screenshot_dir(tmp_path)
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{server.base_url}/console")
    page.screenshot(path=str(shots / "sign-in.png"), full_page=True)
    cookies_before = context.cookies()
    page.get_by_label("API key").fill(server.tokens["auditor0"])
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/console/requests")
    session = next(c for c in context.cookies() if c["name"] == "auditlog_console")
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/console"
    assert all(c["name"] != "auditlog_console" for c in cookies_before)

    # Search: only tenant-0's requests are listed (C19), and the outcome filter applies.
    own = server.request_of("tenant-0")
    expected = sorted(r for r, t in server.truth.items() if t.tenant == "tenant-0")
    page.get_by_label("Outcome").select_option("length")
    page.get_by_role("button", name="Search").click()
    listed = page.locator("table.results tbody tr td:first-child a").all_inner_texts()
    assert sorted(listed) == expected
    page.screenshot(path=str(shots / "search.png"), full_page=True)
    page.get_by_label("Outcome").select_option("abort")
    page.get_by_role("button", name="Search").click()
    assert page.get_by_text("No request matches.").is_visible()
    page.get_by_label("Outcome").select_option("")
    page.get_by_label("Started before (UTC)").fill("1970-01-02T00:00")
    page.get_by_role("button", name="Search").click()
    assert page.get_by_text("No request matches.").is_visible()
    page.get_by_label("Started before (UTC)").fill("2200-01-01T00:00")
    page.get_by_role("button", name="Search").click()
    assert page.locator("table.results tbody tr td:first-child a").count() == len(expected)

    # The trail: every token carries its recorded provenance as colour and letter.
    page.get_by_label("Request id").fill(own)
    page.get_by_role("button", name="Search").click()
    assert page.url.endswith(f"/console/requests/{own}")
    truth = server.truth[own]
    tokens = page.locator("#tokens details.tok")
    assert tokens.count() == len(truth.token_ids)
    for index, (token_id, provenance) in enumerate(
        zip(truth.token_ids, truth.provenance, strict=True)
    ):
        token = tokens.nth(index)
        assert token.get_attribute("data-provenance") == provenance.value
        assert token.locator("summary").inner_text() == f"{LETTERS[provenance.value]}{token_id}"
        colour = token.evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour == COLOURS[provenance.value], (index, provenance)
    legend = page.locator("ul.legend li")
    assert legend.count() == 4
    for code, colour in COLOURS.items():
        swatch = page.locator(f"ul.legend .prov-{code}")
        assert swatch.evaluate("e => getComputedStyle(e).backgroundColor") == colour
        assert LETTERS[code] in swatch.inner_text()
        assert swatch.evaluate(CONTRAST) >= 4.5, code  # WCAG AA for text
    prompt = HOSTILE_PROMPT if own == "req-00000" else f"prompt \u00e9 \u00fc \n\t\u0001 {own}"
    assert page.locator("pre.prompt").inner_text() == prompt
    # The keyboard reaches everything: the skip link comes first and lands on the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Per-token details open from the keyboard.
    first = tokens.first
    first.locator("summary").focus()
    page.keyboard.press("Enter")
    assert first.get_attribute("open") is not None
    assert f"{truth.steps[0]}" in first.locator("dl.tokinfo").inner_text()
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("data-status") == "anchored"
    assert "anchored" in (verdict.locator(".status").text_content() or "")
    assert "tree size" in verdict.inner_text() and "trusted" in verdict.inner_text()
    download_button = page.get_by_role("link", name="Download evidence bundle")
    assert download_button.evaluate(CONTRAST) >= 4.5
    page.screenshot(path=str(shots / "trail.png"), full_page=True)

    # The evidence bundle downloads and verifies offline against the engine's key (C20).
    with page.expect_download() as download:
        page.get_by_role("link", name="Download evidence bundle").click()
    data = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename == f"{own}.bundle.json"
    report = verify_bundle(data, trusted_keys=[server.engine_signer.verifier_key])
    assert report.transcript.request_id == own
    assert [t.token_id for t in report.transcript.tokens] == truth.token_ids
    assert [t.provenance for t in report.transcript.tokens] == [p.value for p in truth.provenance]

    # Another tenant's trail is not reachable by URL: the same 404 as a missing one (C19).
    foreign = server.request_of("tenant-1")
    for request_id in (foreign, "no-such-request"):
        response = page.goto(f"{server.base_url}/console/requests/{request_id}")
        assert response is not None and response.status == 404
        assert page.get_by_role("alert").inner_text() == "Not found, or not visible to you."
        assert HOSTILE_PROMPT not in page.content()
    page.screenshot(path=str(shots / "not-found.png"), full_page=True)
    response = page.goto(f"{server.base_url}/console/steps")
    assert response is not None and response.status == 403

    # Sign out: the session is gone, the pages send the browser back to the sign-in form.
    page.goto(f"{server.base_url}/console/requests")
    page.get_by_role("button", name="Sign out").click()
    assert page.url.endswith("/console/sign-in")
    page.goto(f"{server.base_url}/console/requests/{own}")
    assert page.url.endswith("/console/sign-in")

    # C18: each page view wrote the API's access record, naming the console route.
    headers = [h for h in _access_headers(server) if h["principal"] == server.key_ids["auditor0"]]
    reads = [(h["endpoint"], h["request_ids"], h["status"]) for h in headers]
    assert reads[0] == ("POST /console/sign-in", [], 303)
    assert ("GET /console/requests/{request_id:path}", [own], 200) in reads
    assert ("GET /console/requests/{request_id:path}/bundle", [own], 200) in reads
    assert ("GET /console/requests/{request_id:path}", [foreign], 404) in reads
    assert ("GET /console/steps", [], 403) in reads
    assert reads[-1] == ("POST /console/sign-out", [], 303)
    context.close()


def test_operator_and_admin_pages(server: ConsoleServer, browser: Any, tmp_path: Path) -> None:
    """C17: an operator sees step manifests (no content, no search); an admin also sees the
    access log, with the operator's reads in it."""
    shots = screenshot_dir(tmp_path)
    operator = _sign_in(browser, server, "operator")
    assert operator.url.endswith("/console/steps")
    rows = operator.locator("table.results tbody tr")
    assert rows.count() > 0
    assert "req-" in rows.first.inner_text()
    assert HOSTILE_PROMPT not in operator.content()
    operator.screenshot(path=str(shots / "steps.png"), full_page=True)
    response = operator.goto(f"{server.base_url}/console/requests")
    assert response is not None and response.status == 403

    admin = _sign_in(browser, server, "admin")
    assert admin.url.endswith("/console/requests")
    admin.get_by_role("link", name="Access log").click()
    table = admin.locator("table.results tbody").inner_text()
    assert server.key_ids["operator"] in table and "GET /console/steps" in table
    assert "operator (test)" in table
    admin.screenshot(path=str(shots / "access-log.png"), full_page=True)
    # A hostile prompt is shown as text, never run as markup.
    dialogs: list[str] = []
    admin.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    admin.goto(f"{server.base_url}/console/requests/req-00000")
    assert admin.locator("pre.prompt").inner_text() == HOSTILE_PROMPT
    assert admin.locator("pre.prompt script").count() == 0 and dialogs == []


def test_a_forged_form_is_refused(server: ConsoleServer, browser: Any, tmp_path: Path) -> None:
    """A sign-out or sign-in whose CSRF token is not the session's is refused (403) and
    changes nothing."""
    page = _sign_in(browser, server, "auditor0")
    page.locator("form[action='/console/sign-out'] input[name=csrf_token]").evaluate(
        "e => { e.value = 'forged' }"
    )
    with page.expect_response(lambda r: r.url.endswith("/console/sign-out")) as answer:
        page.get_by_role("button", name="Sign out").click()
    assert answer.value.status == 403
    page.screenshot(path=str(screenshot_dir(tmp_path) / "csrf-refused.png"), full_page=True)
    response = page.goto(f"{server.base_url}/console/requests")
    assert response is not None and response.status == 200  # still signed in

    fresh = browser.new_context().new_page()
    fresh.goto(f"{server.base_url}/console/sign-in")
    fresh.locator("input[name=csrf_token]").evaluate("e => { e.value = 'forged' }")
    fresh.get_by_label("API key").fill(server.tokens["admin"])
    with fresh.expect_response(lambda r: r.url.endswith("/console/sign-in")) as refused:
        fresh.get_by_role("button", name="Sign in").click()
    assert refused.value.status == 403
    assert all(c["name"] != "auditlog_console" for c in fresh.context.cookies())
