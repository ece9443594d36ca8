"""The tlog-tiles read API (C2SP tlog-tiles) under the auditor API: public checkpoint and hash
tiles, entry bundles only to callers entitled to every record in them (C17, C18).

Interoperability with third-party tile readers on a 70,000-record log is tested in
tests/witnesses/test_tiles_third_party.py."""

from __future__ import annotations

import hashlib

from api_helpers import API_ORIGIN, ENGINE_ORIGIN, World

from auditlog.ledger import leaf_hash, parse_header
from auditlog.ledger.tiles import tile_index_path
from auditlog.store import StoredNodeSource, get_log_id, iter_records, latest_checkpoint

BASE = f"/v1/tlog/{hashlib.sha256(ENGINE_ORIGIN.encode()).hexdigest()}"
IMMUTABLE = "public, max-age=31536000, immutable"


def _state(world: World) -> tuple[int, int, list[bytes]]:
    with world.engine.connect() as conn:
        log_id = get_log_id(conn, ENGINE_ORIGIN)
        latest = latest_checkpoint(conn, log_id)
        assert latest is not None
        return log_id, latest.size, StoredNodeSource(conn, log_id).get_nodes(0, 0, latest.size)


def _entries(data: bytes) -> list[bytes]:
    out = []
    while data:
        n = int.from_bytes(data[:2], "big")
        out.append(data[2 : 2 + n])
        data = data[2 + n :]
    return out


def test_checkpoint_and_hash_tiles_are_public_and_cacheable(world: World) -> None:
    _, size, leaves = _state(world)
    assert 0 < size < 256  # the small world: one partial level-0 tile
    cp = world.client.get(f"{BASE}/checkpoint")  # no API key at all
    assert cp.status_code == 200 and cp.headers["cache-control"] == "no-cache"
    assert cp.text.split("\n")[:2] == [ENGINE_ORIGIN, str(size)]
    tile = world.client.get(f"{BASE}/tile/0/000.p/{size}")
    assert tile.status_code == 200 and tile.headers["cache-control"] == IMMUTABLE
    assert tile.content == b"".join(leaves)
    narrower = world.client.get(f"{BASE}/tile/0/000.p/{size - 1}")  # an older tree's tile
    assert narrower.content == b"".join(leaves[: size - 1])


def test_tiles_the_signed_tree_lacks_are_404(world: World) -> None:
    _, size, _ = _state(world)
    for path in (
        "tile/0/000",  # a full tile of a tree of < 256 leaves
        f"tile/0/000.p/{size + 1}",  # wider than the signed tree
        "tile/1/000.p/1",  # no level-1 subtree yet
        "tile/0/001.p/1",
        "tile/0/x000/000.p/1",  # non-canonical index
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/9/000",
    ):
        assert world.client.get(f"{BASE}/{path}").status_code == 404, path
    assert world.client.get(f"/v1/tlog/{'0' * 64}/checkpoint").status_code == 404


def test_entry_bundles_need_a_key_entitled_to_every_record(world: World) -> None:
    """Record headers name tenants and requests: anonymous 401, operator 403, an auditor of some
    tenants 403 (the bundle mixes tenants); the admin reads it, its entries hash to the leaves,
    and the read is an access record naming the requests."""
    _, size, leaves = _state(world)
    path = f"{BASE}/tile/entries/000.p/{size}"
    assert world.client.get(path).status_code == 401
    assert world.client.get(path, headers=world.headers("operator")).status_code == 403
    assert world.client.get(path, headers=world.headers("auditor0")).status_code == 403
    answer = world.client.get(path, headers=world.headers("admin", reason="tiles test"))
    assert answer.status_code == 200 and answer.headers["cache-control"] == IMMUTABLE
    entries = _entries(answer.content)
    assert [leaf_hash(e) for e in entries] == leaves
    with world.engine.connect() as conn:
        access = [parse_header(r.body) for r in iter_records(conn, get_log_id(conn, API_ORIGIN))]
    assert [(h["principal"], h["status"]) for h in access] == [
        (world.key_ids["operator"], 403),
        (world.key_ids["auditor0"], 403),
        (world.key_ids["admin"], 200),
    ]
    assert access[-1]["endpoint"] == "GET /v1/tlog/{log}/tile/entries/{path:path}"
    assert access[-1]["reason"] == "tiles test"
    requests = {parse_header(e)["request_id"] for e in entries} - {None}
    assert access[-1]["request_ids"] == sorted(requests) and requests


def test_tile_index_paths() -> None:
    assert tile_index_path(0) == "000"
    assert tile_index_path(1234067) == "x001/x234/067"
