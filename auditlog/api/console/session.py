"""Console sessions: a signed-in API key behind a random session cookie, and CSRF tokens.

Contract:

- Sign-in MUST verify the key with :func:`auditlog.api.keys.authenticate` (the API's own check);
  the session then holds only the key's id, never its secret. Every request re-reads the key by
  id, so a revoked key loses its sessions at once.
- The session cookie is random (32 bytes), HttpOnly, ``SameSite=Strict``, scoped to the console
  path and ``Secure`` when the request came over https. The server keeps only the SHA-256 of the
  cookie value; signing out deletes it. Sessions expire after :data:`IDLE_TIMEOUT_S` without use
  and :data:`MAX_AGE_S` after sign-in, whichever comes first.
- Every POST form carries a CSRF token that the server MUST check before acting: the session's
  own random token once signed in; before sign-in, an HMAC of a random pre-session cookie
  (double submit, so that a forged sign-in cannot log a victim into the attacker's key).
- Sessions live in this process (the API runs one process per access log origin); a restart
  signs everybody out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import Request, Response

__all__ = [
    "IDLE_TIMEOUT_S",
    "MAX_AGE_S",
    "PRE_COOKIE",
    "SESSION_COOKIE",
    "ConsoleSession",
    "SessionStore",
    "clear_cookie",
    "new_nonce",
    "set_cookie",
]

#: Cookie holding the session id (path ``/console``).
SESSION_COOKIE = "auditlog_console"
#: Cookie holding the pre-session nonce of the sign-in form.
PRE_COOKIE = "auditlog_console_pre"
COOKIE_PATH = "/console"
#: A session unused for this long is gone.
IDLE_TIMEOUT_S = 30 * 60
#: No session outlives this, used or not.
MAX_AGE_S = 8 * 60 * 60
#: Most live sessions kept; the least recently used goes first beyond it.
MAX_SESSIONS = 10_000
_TOKEN_BYTES = 32


def _digest(token: str) -> str:
    # Key of the session table: SHA-256 of the cookie value (the value itself is not kept).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class ConsoleSession:
    """A signed-in key: its id, the session's CSRF token, and when it was made and last used."""

    key_id: str
    csrf_token: str
    created: float
    last_seen: float

    def csrf_ok(self, submitted: str | None) -> bool:
        """True when ``submitted`` is this session's CSRF token (constant-time compare)."""
        return submitted is not None and hmac.compare_digest(
            submitted.encode("utf-8"), self.csrf_token.encode("utf-8")
        )


class SessionStore:
    """Thread-safe table of live sessions, plus the secret of the pre-session CSRF tokens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, ConsoleSession] = OrderedDict()
        self._secret = secrets.token_bytes(_TOKEN_BYTES)

    def create(self, key_id: str) -> tuple[str, ConsoleSession]:
        """A new session for ``key_id``; returns (cookie value, session)."""
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        now = time.monotonic()
        session = ConsoleSession(key_id, secrets.token_urlsafe(_TOKEN_BYTES), now, now)
        with self._lock:
            self._sessions[_digest(token)] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return token, session

    def get(self, token: str | None) -> ConsoleSession | None:
        """The live session of cookie value ``token`` (refreshing its idle timer), else None."""
        if not token:
            return None
        now = time.monotonic()
        digest = _digest(token)
        with self._lock:
            session = self._sessions.get(digest)
            if session is None:
                return None
            if now - session.last_seen > IDLE_TIMEOUT_S or now - session.created > MAX_AGE_S:
                del self._sessions[digest]
                return None
            session.last_seen = now
            self._sessions.move_to_end(digest)
            return session

    def drop(self, token: str | None) -> None:
        """Forget the session of cookie value ``token`` (sign-out, revoked key)."""
        if token:
            with self._lock:
                self._sessions.pop(_digest(token), None)

    def pre_token(self, nonce: str) -> str:
        """CSRF token of the sign-in form for pre-session nonce ``nonce``."""
        mac = hmac.new(self._secret, b"console-sign-in\x00" + nonce.encode("utf-8"), "sha256")
        return mac.hexdigest()

    def pre_ok(self, nonce: str | None, submitted: str | None) -> bool:
        """True when ``submitted`` is the sign-in CSRF token of the pre-session ``nonce``."""
        if not nonce or submitted is None:
            return False
        return hmac.compare_digest(self.pre_token(nonce).encode(), submitted.encode("utf-8"))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """Set a console cookie: HttpOnly, SameSite=Strict, path /console, Secure over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_secure(request)
    )


def new_nonce() -> str:
    """A fresh pre-session nonce."""
    return secrets.token_urlsafe(_TOKEN_BYTES)
