"""Request ids: the caller's ``x-request-id`` (validated) or a generated one, namespaced per tenant.

Tenant isolation (C19): a caller names its requests in its **own** namespace. The trail's request
id (the ``request_id`` of its records) is ``<namespace>/<caller id>``, where the namespace is the
caller's tenant (:func:`trail_request_id`). A caller id MUST match ``CALLER_ID_PATTERN``, which has
no ``"/"``: the caller id is everything after the trail id's last ``"/"``, so one caller can never
name (or probe) an id in another tenant's namespace. Only a collision inside the caller's own
namespace is refused (409), which reveals nothing but the tenant's own ids.

A trail id MUST be unique within its log: :meth:`RequestIds.reserve` claims it in memory (so two
concurrent requests cannot both pass) and, for ids a caller chose, looks it up in the log (so a
restart does not forget). Callers SHOULD reserve only once the request is otherwise valid, so a
refused request does not burn its id. While the database does not answer, an id the caller chose
cannot be decided: the request is refused with 503 and ``Retry-After`` and the id stays free.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy import Engine

from auditlog.recorder.spool import is_outage
from auditlog.store.log_registry import request_in_log

from .openai_errors import ApiError, database_unavailable

__all__ = [
    "CALLER_ID_PATTERN",
    "NAMESPACE_SEPARATOR",
    "REQUEST_ID_HEADER",
    "TRAIL_ID_HEADER",
    "RequestIds",
    "RequestName",
    "trail_request_id",
]

REQUEST_ID_HEADER = "x-request-id"  # the caller's id, echoed as sent (or the generated one)
TRAIL_ID_HEADER = "x-auditlog-request-id"  # the trail's request id, <namespace>/<caller id>
NAMESPACE_SEPARATOR = "/"
CALLER_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"  # no NAMESPACE_SEPARATOR, by design
_CALLER_ID_RE = re.compile(rf"\A{CALLER_ID_PATTERN}\Z")
MAX_TRAIL_ID_LENGTH = 255  # the recorder's limit on a request id (records.request_id column)
_RECENT_KEPT = 1_000_000  # ids remembered in memory; older ones are checked in the database


@dataclass(frozen=True, slots=True)
class RequestName:
    """A request's two names: what the caller sees, and the trail id in the log."""

    caller_id: str  # the caller's x-request-id as sent, or the generated id
    trail_id: str  # <namespace>/<caller_id>
    chosen: bool  # True if the caller sent the id


def trail_request_id(namespace: str, caller_id: str) -> str:
    """The trail id ``<namespace>/<caller_id>``; 400 if ``caller_id`` is not a valid caller id or
    the result exceeds the recorder's id length."""
    if not _CALLER_ID_RE.match(caller_id):
        raise _invalid(
            f"invalid {REQUEST_ID_HEADER}: expected 1-128 characters of [A-Za-z0-9._:-] "
            "starting with a letter or digit"
        )
    trail_id = f"{namespace}{NAMESPACE_SEPARATOR}{caller_id}"
    if not namespace or len(trail_id) > MAX_TRAIL_ID_LENGTH:
        raise _invalid(
            f"{REQUEST_ID_HEADER} too long: with the tenant prefix it must fit "
            f"{MAX_TRAIL_ID_LENGTH} characters"
        )
    return trail_id


class RequestIds:
    """Names, validates and reserves request ids for one log."""

    def __init__(
        self, *, engine: Engine | None, origin: str, generated_prefix: str = "req-"
    ) -> None:
        self._engine = engine
        self._origin = origin
        self._prefix = generated_prefix
        self._recent: OrderedDict[str, None] = OrderedDict()

    def name(self, namespace: str, header: str | None) -> RequestName:
        """The request's names from the caller's header (None: generate one); 400 if invalid."""
        if header is None:
            caller_id = f"{self._prefix}{uuid.uuid4().hex}"
            return RequestName(caller_id, trail_request_id(namespace, caller_id), chosen=False)
        return RequestName(header, trail_request_id(namespace, header), chosen=True)

    async def reserve(self, name: RequestName) -> None:
        """Claim ``name.trail_id`` for a new trail; 409 if used. Event loop thread only.

        An id the caller chose is also looked up in the log, in a worker thread; it is claimed in
        memory first, so two concurrent callers cannot both pass.
        """
        trail_id = name.trail_id
        if trail_id in self._recent:
            raise _duplicate(name.caller_id)
        self._recent[trail_id] = None
        if len(self._recent) > _RECENT_KEPT:
            self._recent.popitem(last=False)
        try:
            used = name.chosen and await anyio.to_thread.run_sync(self._in_log, trail_id)
        except BaseException as exc:
            del self._recent[trail_id]  # undecided: the id stays free for a retry
            if isinstance(exc, Exception) and is_outage(exc):
                raise database_unavailable() from exc
            raise
        if used:
            raise _duplicate(name.caller_id)

    def _in_log(self, trail_id: str) -> bool:
        if self._engine is None:
            return False
        with self._engine.connect() as conn:
            return request_in_log(conn, self._origin, trail_id)


def _invalid(message: str) -> ApiError:
    return ApiError.bad_request(message, param=REQUEST_ID_HEADER, code="invalid_request_id")


def _duplicate(caller_id: str) -> ApiError:
    # Names only the caller's own id: the namespace is the caller's tenant (C19).
    return ApiError(
        409,
        f"request id {caller_id!r} is already used by your tenant",
        param=REQUEST_ID_HEADER,
        code="duplicate_request_id",
    )
