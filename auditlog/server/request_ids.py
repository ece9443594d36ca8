"""Logical request ids: the caller's ``x-request-id`` (validated) or a generated one.

The id names the request's trail in the log, so it MUST be unique within the log: a caller's id
that this server has used, or that the log already holds, is refused with 409.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict

import anyio.to_thread
from sqlalchemy import Engine, select

from auditlog.store.schema import logs, records

from .openai_errors import ApiError

__all__ = ["REQUEST_ID_HEADER", "RequestIds"]

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
_RECENT_KEPT = 1_000_000  # ids remembered in memory; older ones are checked in the database


class RequestIds:
    """Validates, generates and reserves request ids for one log."""

    def __init__(self, *, engine: Engine | None, origin: str) -> None:
        self._engine = engine
        self._origin = origin
        self._recent: OrderedDict[str, None] = OrderedDict()

    @staticmethod
    def parse(header: str | None) -> str | None:
        """The caller's id, or None if it sent none; 400 if it is not a valid id."""
        if header is None:
            return None
        if not _REQUEST_ID_RE.match(header):
            raise ApiError.bad_request(
                f"invalid {REQUEST_ID_HEADER}: expected 1-128 characters of [A-Za-z0-9._:-] "
                "starting with a letter or digit",
                param=REQUEST_ID_HEADER,
                code="invalid_request_id",
            )
        return header

    @staticmethod
    def generate() -> str:
        return f"req-{uuid.uuid4().hex}"

    async def reserve(self, request_id: str, *, check_log: bool) -> None:
        """Claim ``request_id`` for a new trail; 409 if it was used. Event loop thread only.

        ``check_log`` also looks the id up in the log (for ids the caller chose), in a worker
        thread; the id is claimed in memory first, so two concurrent callers cannot both pass.
        """
        if request_id in self._recent:
            raise _duplicate(request_id)
        self._recent[request_id] = None
        if len(self._recent) > _RECENT_KEPT:
            self._recent.popitem(last=False)
        if check_log and await anyio.to_thread.run_sync(self._in_log, request_id):
            raise _duplicate(request_id)

    def _in_log(self, request_id: str) -> bool:
        if self._engine is None:
            return False
        with self._engine.connect() as conn:
            query = (
                select(records.c.seq)
                .select_from(records.join(logs, logs.c.id == records.c.log_id))
                .where(logs.c.origin == self._origin, records.c.request_id == request_id)
                .limit(1)
            )
            return conn.execute(query).first() is not None


def _duplicate(request_id: str) -> ApiError:
    return ApiError(
        409,
        f"request id {request_id!r} is already used in this log",
        param=REQUEST_ID_HEADER,
        code="duplicate_request_id",
    )
