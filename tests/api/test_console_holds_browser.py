"""Legal holds and erasures in a real browser (Debian's Chromium driven by Playwright) against a
real ``auditlog api`` process over sealed payloads written by the real recorder.

C15 (a hold placed and released from the console, each a signed record), C16 (an erasure of held
content refused and shown, the refusal recorded; after the release it goes through), C17 and C19
(an auditor of another tenant sees nothing of it), C18 (every page view and form post is an
access record). Screenshots are saved as test artifacts (``console_server.screenshot_dir``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import ADMIN_ORIGIN, API_ORIGIN, fixed_signer
from console_server import ConsoleServer, console_server, screenshot_dir
from test_console_browser import _LUMINANCE, CONTRAST

from auditlog.ledger import parse_header
from auditlog.store.db import create_db_engine
from auditlog.store.ledger_store import get_log_id, iter_records
from auditlog.verifier import verify_database

#: WCAG contrast of an element's text against the first opaque background behind it.
CONTRAST_BEHIND = f"""e => {{ const lum = {_LUMINANCE}; let n = e;
  while (n.parentElement && getComputedStyle(n).backgroundColor === 'rgba(0, 0, 0, 0)')
    n = n.parentElement;
  const [a, b] = [lum(getComputedStyle(e).color), lum(getComputedStyle(n).backgroundColor)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); }}"""


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ConsoleServer]:
    with console_server(db_url, tmp_path, sealed=True) as running:
        yield running


def _sign_in(browser: Any, server: ConsoleServer, who: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{server.base_url}/console/sign-in")
    page.get_by_label("API key").fill(server.tokens[who])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return page


def _submit(page: Any, button: str, path: str) -> int:
    """Click ``button`` of a form posting to ``path``; the answer's status."""
    with page.expect_response(
        lambda r: r.url.endswith(path) and r.request.method == "POST"
    ) as answer:
        page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()
    return int(answer.value.status)


def _access(server: ConsoleServer, who: str) -> list[tuple[str, int]]:
    engine = create_db_engine(server.db_url)
    try:
        with engine.connect() as conn:
            log_id = get_log_id(conn, API_ORIGIN)
            headers = [parse_header(bytes(r.body)) for r in iter_records(conn, log_id)]
    finally:
        engine.dispose()
    return [(h["endpoint"], h["status"]) for h in headers if h["principal"] == server.key_ids[who]]


def test_admin_holds_refused_erasure_release_and_another_tenants_auditor(
    server: ConsoleServer, browser: Any, tmp_path: Path
) -> None:
    shots = screenshot_dir(tmp_path)
    own = server.request_of("tenant-0")
    hold_id = f"{ADMIN_ORIGIN}#0"
    admin = _sign_in(browser, server, "admin")
    admin.get_by_role("link", name="Legal holds", exact=True).click()
    assert admin.url.endswith("/console/holds")
    assert admin.get_by_text("No hold in force.").is_visible()

    # Place a hold on tenant-0, from the keyboard-reachable, labelled form.
    admin.get_by_label("Tenant").fill("tenant-0")
    admin.get_by_label("Reason for the hold (case, regulator, court order)").fill("SEC inquiry 42")
    admin.get_by_label("Reason for the hold (case, regulator, court order)").focus()
    admin.keyboard.press("Tab")
    assert admin.evaluate("document.activeElement.textContent") == "Place hold"
    assert admin.get_by_role("button", name="Place hold").evaluate(CONTRAST) >= 4.5
    assert _submit(admin, "Place hold", "/console/holds") == 201
    assert admin.locator("#outcome").get_attribute("data-outcome") == "placed"
    assert hold_id in admin.get_by_role("status").inner_text()
    admin.screenshot(path=str(shots / "hold-placed.png"), full_page=True)
    admin.get_by_role("link", name="Back to legal holds").click()
    row = admin.locator(f'tr[data-hold="{hold_id}"]')
    assert "tenant tenant-0" in row.inner_text() and "SEC inquiry 42" in row.inner_text()
    assert server.key_ids["admin"] in row.inner_text()
    admin.screenshot(path=str(shots / "holds.png"), full_page=True)

    # Erasing held content is refused, shown as such, and the refusal is listed.
    admin.get_by_role("link", name="Erasures", exact=True).click()
    admin.get_by_label("Request ids").fill(own)
    admin.get_by_label("Reason for the erasure").fill("data subject request")
    admin.get_by_label("Legal basis").fill("GDPR Art. 17(1)(a)")
    assert _submit(admin, "Erase", "/console/erasures") == 409
    alert = admin.get_by_role("alert").inner_text()
    assert alert.startswith(f"erasure refused ({own}: hold {hold_id})")
    assert f"the refusal is record 1 of {ADMIN_ORIGIN}" in alert
    refused = admin.locator("#outcome")
    assert refused.get_attribute("data-outcome") == "refused"
    assert "refused" in (refused.locator(".status").text_content() or "")  # not colour alone
    assert admin.get_by_role("alert").evaluate(CONTRAST_BEHIND) >= 4.5
    admin.screenshot(path=str(shots / "erasure-refused.png"), full_page=True)
    admin.get_by_role("link", name="Back to erasures").click()
    entry = admin.locator(f'tr[data-erasure="{ADMIN_ORIGIN}#1"]')
    assert entry.get_attribute("data-outcome") == "refused"
    assert f"blocked by hold {hold_id}" in entry.inner_text()

    # An auditor of another tenant sees nothing of it, and no form.
    other = _sign_in(browser, server, "auditor1")
    for path, empty in (
        ("/console/holds", "No hold in force on your tenants."),
        ("/console/erasures", "No erasure of your tenants' requests."),
    ):
        response = other.goto(f"{server.base_url}{path}")
        assert response is not None and response.status == 200
        assert other.get_by_text(empty).is_visible()
        content = other.content()
        assert hold_id not in content and own not in content and "SEC inquiry" not in content
        forms = "form[action^='/console/holds'], form[action='/console/erasures']"
        assert other.locator(forms).count() == 0
    other.screenshot(path=str(shots / "holds-other-tenant.png"), full_page=True)

    # Release the hold; the erasure then goes through, and the trail shows the content erased.
    admin.get_by_role("link", name="Legal holds", exact=True).click()
    admin.get_by_label(f"Why release {hold_id}").fill("inquiry closed")
    assert _submit(admin, "Release", "/console/holds/release") == 200
    assert admin.locator("#outcome").get_attribute("data-outcome") == "released"
    admin.get_by_role("link", name="Back to legal holds").click()
    assert admin.get_by_text("No hold in force.").is_visible()
    admin.get_by_role("link", name="Erasures", exact=True).click()
    admin.get_by_label("Request ids").fill(own)
    admin.get_by_label("Reason for the erasure").fill("data subject request")
    admin.get_by_label("Legal basis").fill("GDPR Art. 17(1)(a)")
    assert _submit(admin, "Erase", "/console/erasures") == 201
    assert admin.locator("#outcome").get_attribute("data-outcome") == "erased"
    admin.get_by_role("link", name="Back to erasures").click()
    outcomes = admin.locator("#erasures tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.outcome)"
    )
    assert outcomes == ["refused", "erased"]
    admin.screenshot(path=str(shots / "erasures.png"), full_page=True)
    admin.goto(f"{server.base_url}/console/requests/{own}")
    erased = admin.locator("#prompt-content")
    assert erased.get_attribute("data-content") == "erased" and erased.is_visible()
    assert "data subject request (GDPR Art. 17(1)(a))" in erased.inner_text()

    # C18: every page view and post was recorded, naming the console route and its status.
    reads = _access(server, "admin")
    for expected in (
        ("GET /console/holds", 200),
        ("POST /console/holds", 201),
        ("POST /console/erasures", 409),
        ("POST /console/holds/release", 200),
        ("POST /console/erasures", 201),
        ("GET /console/erasures", 200),
    ):
        assert expected in reads, expected
    assert _access(server, "auditor1") == [
        ("POST /console/sign-in", 303),
        ("GET /console/requests", 200),  # where sign-in lands
        ("GET /console/holds", 200),
        ("GET /console/erasures", 200),
    ]
    keys = [server.engine_signer.verifier_key, server.api_signer.verifier_key]
    report = verify_database(server.db_url, keys=[*keys, fixed_signer(ADMIN_ORIGIN).verifier_key])
    assert report.ok, report.findings
