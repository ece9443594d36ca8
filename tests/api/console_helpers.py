"""Helpers of the console tests: sign in through the real form, read hidden CSRF fields."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from httpx import Response

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the (first) form on a console page."""
    match = _CSRF.search(html)
    if match is None:
        raise AssertionError("no CSRF token on the page")
    return match.group(1)


def sign_in(client: TestClient, token: str) -> Response:
    """Sign ``client`` in with API key ``token`` through the sign-in form (no redirect follow)."""
    form = client.get("/console/sign-in")
    assert form.status_code == 200
    return client.post(
        "/console/sign-in",
        data={"api_key": token, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
