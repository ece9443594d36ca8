"""The log as C2SP tlog-tiles, under ``/v1/tlog/<log>/`` (``<log>``: hex SHA-256 of the origin).

``checkpoint`` and the hash tiles ``tile/<L>/<N>[.p/<W>]`` are public: they reveal sizes and
hashes, no content, and let anyone re-derive every root and proof (C10). Entry bundles
``tile/entries/<N>[.p/<W>]`` hold record headers, which name tenants and requests: only an admin
key, or an auditor key whose tenants cover every record in the bundle, reads them, and each read
is an access record (C18). Tiles are computed from the stored leaves and Merkle nodes up to the
latest signed checkpoint; a tile path always holds the same bytes, so tiles are served as
immutable, the checkpoint as ``no-cache``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import PlainTextResponse
from sqlalchemy import Connection

from auditlog.bundle.export import NoCheckpointError
from auditlog.errors import FormatError, NotFoundError
from auditlog.ledger.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    encode_entry_bundle,
    level_count,
    parse_tile_index,
)
from auditlog.store.ledger_store import StoredNodeSource, iter_records, latest_checkpoint, list_logs

from ..deps import AuditDep, ConnDep, KeyDep
from . import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(prefix="/v1/tlog", tags=["tiles"], responses=ERROR_RESPONSES)

_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_TILE_TYPE = "application/octet-stream"
_MAX_LEVEL = 63 // TILE_HEIGHT + 1


def _log(conn: Connection, log: str) -> tuple[int, int, str]:
    """(log id, latest checkpoint size, its note) of the log whose origin hashes to ``log``."""
    for info in list_logs(conn):
        if hashlib.sha256(info.origin.encode()).hexdigest() == log:
            latest = latest_checkpoint(conn, info.id)
            if latest is None:
                raise NoCheckpointError("the log has no signed checkpoint yet")
            return info.id, latest.size, latest.note
    raise NotFoundError("no such log")


def _span(path: str, count: int) -> tuple[int, int]:
    """[start, stop) of the subtrees a tile path covers, if the signed tree has them all."""
    try:
        index, width = parse_tile_index(path)
    except FormatError as exc:
        raise NotFoundError(str(exc)) from None
    start = index * TILE_WIDTH
    stop = start + (TILE_WIDTH if width is None else width)
    if stop > count:
        raise NotFoundError("the signed tree does not have that tile")
    return start, stop


_TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}}
}
_BYTES: dict[int | str, dict[str, Any]] = {
    200: {"content": {_TILE_TYPE: {"schema": {"type": "string", "format": "binary"}}}}
}


@router.get("/{log}/checkpoint", response_model=None, responses=_TEXT, summary="tlog checkpoint")
def checkpoint(log: str, conn: ConnDep) -> Response:
    """The latest signed checkpoint (C2SP signed note); public."""
    _, _, note = _log(conn, log)
    return PlainTextResponse(note, headers={"Cache-Control": "no-cache"})


@router.get(
    "/{log}/tile/entries/{path:path}",
    response_model=None,
    responses=_BYTES,
    summary="tlog entry bundle (restricted)",
)
def entries(log: str, path: str, key: KeyDep, audit: AuditDep, conn: ConnDep) -> Response:
    """Record headers 256·N .. 256·N + W - 1 as an entry bundle; admins, or auditors whose
    tenants cover every record in it."""
    with audit.reading() as scope:
        log_id, size, _ = _log(conn, log)
        start, stop = _span(path, size)
        stored = list(iter_records(conn, log_id, start, stop))
        scope.request_ids.extend(sorted({r.request_id for r in stored if r.request_id}))
        if not all(key.may_read_tenant(r.tenant) for r in stored):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "this entry bundle holds records of other tenants"
            )
        data = encode_entry_bundle(r.body for r in stored)
    return Response(data, media_type=_TILE_TYPE, headers=_IMMUTABLE)


@router.get(
    "/{log}/tile/{level:int}/{path:path}",
    response_model=None,
    responses=_BYTES,
    summary="tlog hash tile",
)
def tile(log: str, level: int, path: str, conn: ConnDep) -> Response:
    """Hashes of the complete subtrees at Merkle level 8·L (C2SP tlog-tiles); public."""
    if not 0 <= level < _MAX_LEVEL:
        raise NotFoundError(f"no tile level {level}")
    log_id, size, _ = _log(conn, log)
    start, stop = _span(path, level_count(size, level))
    hashes = StoredNodeSource(conn, log_id).get_nodes(TILE_HEIGHT * level, start, stop)
    return Response(b"".join(hashes), media_type=_TILE_TYPE, headers=_IMMUTABLE)
