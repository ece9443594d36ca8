"""Form input of the console: urlencoded POST bodies and UTC date-time fields."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

from fastapi import Request, status

from .pages import PageError

__all__ = ["MAX_FORM_BYTES", "optional", "parse_when", "read_form"]

#: Largest POST body a console form may send (an API key and a CSRF token fit many times over).
MAX_FORM_BYTES = 8192
_MAX_FIELDS = 16
#: Latest time a search may name: ns since the epoch must fit a BIGINT column.
_MAX_NANOS = 2**63 - 1


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` POST body (first value of each)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise PageError(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "Send the form as a web form.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PageError(status.HTTP_413_CONTENT_TOO_LARGE, "The form is too large.")
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=_MAX_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise PageError(status.HTTP_400_BAD_REQUEST, "The form could not be read.") from None
    return {name: values[0] for name, values in fields.items()}


def optional(value: str | None) -> str | None:
    """``value`` stripped, or None when empty (an empty form field is no criterion)."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def parse_when(value: str | None, field: str) -> int | None:
    """ns since the epoch of a ``YYYY-MM-DDTHH:MM[:SS]`` field read as UTC; None when empty."""
    text = optional(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PageError(
            status.HTTP_400_BAD_REQUEST,
            f"{field}: expected a date and time like 2026-01-31T09:30 (UTC), got {text!r}.",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(moment.timestamp())
    if seconds < 0:
        raise PageError(status.HTTP_400_BAD_REQUEST, f"{field}: before 1970 is not searchable.")
    nanos = seconds * 1_000_000_000 + moment.microsecond * 1000
    if nanos > _MAX_NANOS:
        raise PageError(status.HTTP_400_BAD_REQUEST, f"{field}: after 2262 is not searchable.")
    return nanos
