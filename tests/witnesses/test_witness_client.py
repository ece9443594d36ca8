"""The witness client against a hostile or broken witness (a real HTTP server on 127.0.0.1 that
answers what each test scripts): a cosignature that does not verify, one by another key, one
over another checkpoint, server errors and malformed 409 bodies are never stored as
cosignatures (C10)."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditlog.errors import FormatError
from auditlog.ledger import MemoryNodeSource, Signer, consistency_proof, leaf_hash, root_hash
from auditlog.ledger.checkpoint import Checkpoint, sign_checkpoint
from auditlog.ledger.cosignature import (
    COSIGNATURE_TYPE,
    Cosignature,
    CosignerKey,
    cosignature_key_id,
    cosignature_message,
)
from auditlog.ledger.witness_policy import PolicyWitness
from auditlog.witnesses import (
    WitnessAhead,
    WitnessClient,
    WitnessRefused,
    WitnessUnavailable,
)

ORIGIN = "test.example/client"
Reply = Callable[[bytes], tuple[int, bytes]]


class Witness:
    """A cosigner key and the scripted HTTP answers of a witness that uses it."""

    def __init__(self, name: str = "witness.test/scripted") -> None:
        self.name = name
        self.private = Ed25519PrivateKey.generate()
        public = self.private.public_key().public_bytes_raw()
        kid = cosignature_key_id(name, public).hex()
        self.vkey = f"{name}+{kid}+{base64.b64encode(COSIGNATURE_TYPE + public).decode()}"
        self.requests: list[bytes] = []

    def cosign(self, body: str, timestamp: int = 1_800_000_000) -> str:
        key = CosignerKey.from_key_string(self.vkey)
        sig = self.private.sign(cosignature_message(timestamp, body))
        return Cosignature(key.name, key.key_id, timestamp, sig).line


@pytest.fixture
def scripted() -> Iterator[Callable[[Reply], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(reply: Reply) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                status, body = reply(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _log(n: int) -> tuple[MemoryNodeSource, str, str]:
    """A tree of n leaves, its signed note and the checkpoint text."""
    source = MemoryNodeSource()
    for i in range(n):
        source.append(leaf_hash(f"record {i}".encode()))
    cp = Checkpoint(origin=ORIGIN, size=n, root=root_hash(n, source))
    return source, sign_checkpoint(cp, [Signer.generate(ORIGIN)]), cp.body()


def _client(witness: Witness, url: str) -> WitnessClient:
    return WitnessClient(
        PolicyWitness("w", CosignerKey.from_key_string(witness.vkey), url), timeout_s=5
    )


def test_409_is_followed_with_a_proof_from_the_witness_size(scripted) -> None:  # type: ignore[no-untyped-def]
    """First answer 409 (the witness holds size 5); the retry carries `old 5` and the RFC 9162
    consistency proof 5 -> 9; the returned cosignature verifies and is returned."""
    witness = Witness()
    source, note, body = _log(9)
    answers = iter([(409, b"5\n"), (200, witness.cosign(body).encode())])
    seen: list[bytes] = []

    def reply(request: bytes) -> tuple[int, bytes]:
        seen.append(request)
        return next(answers)

    client = _client(witness, scripted(reply))
    cosig = client.submit(note, lambda old, new: consistency_proof(old, new, source))
    assert cosig.name == witness.name and client.known_size == 9
    assert seen[0].startswith(b"old 0\n\n")
    proof = [base64.b64encode(h) for h in consistency_proof(5, 9, source)]
    assert seen[1] == b"old 5\n" + b"\n".join(proof) + b"\n\n" + note.encode()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("tampered", "does not verify"),  # signature of another time
        ("other-checkpoint", "does not verify"),  # a valid cosignature of another tree
        ("other-key", "no cosignature by its key"),  # signed by a key we do not trust for it
        ("garbage", "no cosignature by its key"),
    ],
)
def test_bad_cosignatures_are_refused(scripted, answer: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    witness, impostor = Witness(), Witness("witness.test/other")
    source, note, body = _log(4)
    _, _, other_body = _log(5)
    good = witness.cosign(body)
    blob = bytearray(base64.b64decode(good.split(" ")[-1]))
    blob[11] ^= 1  # the last byte of the timestamp: the time changed after signing
    lines = {
        "tampered": good.rsplit(" ", 1)[0] + " " + base64.b64encode(bytes(blob)).decode() + "\n",
        "other-checkpoint": witness.cosign(other_body),
        "other-key": impostor.cosign(body),
        "garbage": "\u2014 not a signature line\n",
    }
    line = lines[answer]
    client = _client(witness, scripted(lambda _req: (200, line.encode())))
    with pytest.raises(WitnessRefused, match=expected):
        client.submit(note, lambda old, new: consistency_proof(old, new, source))
    assert client.known_size is None


def test_witness_ahead_is_a_rollback(scripted) -> None:  # type: ignore[no-untyped-def]
    witness = Witness()
    source, note, _ = _log(3)
    client = _client(witness, scripted(lambda _req: (409, b"7\n")))
    with pytest.raises(WitnessAhead, match="rolled back") as caught:
        client.submit(note, lambda old, new: consistency_proof(old, new, source))
    assert caught.value.witness_size == 7


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (503, b"busy", WitnessUnavailable),
        (409, b"not a size", FormatError),
        (409, b"007\n", FormatError),
        (422, b"inconsistent", WitnessRefused),
        (400, b"bad", WitnessRefused),
    ],
)
def test_errors_and_malformed_answers(scripted, status: int, body: bytes, error: type) -> None:  # type: ignore[no-untyped-def]
    witness = Witness()
    source, note, _ = _log(3)
    client = _client(witness, scripted(lambda _req: (status, body)))
    with pytest.raises(error):
        client.submit(note, lambda old, new: consistency_proof(old, new, source))


def test_unreachable_witness_is_unavailable() -> None:
    from witness_env import free_port

    witness = Witness()
    source, note, _ = _log(2)
    client = _client(witness, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(WitnessUnavailable):
        client.submit(note, lambda old, new: consistency_proof(old, new, source))
