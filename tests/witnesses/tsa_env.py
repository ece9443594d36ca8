"""A local RFC 3161 timestamp authority for the tests: ``openssl ts -reply`` behind a tiny HTTP
server on 127.0.0.1, with a root and a TSA certificate that the test creates itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = auditlog test TSA
[ca_ext]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
[tsa_ext]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
[tsa]
default_tsa = tsa1
[tsa1]
serial = {serial}
crypto_device = builtin
signer_digest = sha256
default_policy = 1.3.6.1.4.1.55555.1
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@dataclass
class LocalTsa:
    url: str
    certs_pem: Path  # the TSA certificate and its root, as a verifier gets them out of band
    directory: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path, name: str) -> Path:
    """A root CA and a TSA certificate it signs (P-256); returns the PEM file of both."""
    if shutil.which("openssl") is None:
        reason = "the openssl command line tool is needed for the local timestamp authority"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "openssl.cnf"
    config.write_text(_CONFIG.format(serial=directory / "serial"))
    (directory / "serial").write_text("01\n")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        directory / "ca.key",
        "-out",
        directory / "ca.pem",
        "-days",
        "2",
        "-subj",
        f"/CN={name} root",
        "-extensions",
        "ca_ext",
        "-config",
        config,
    )
    _openssl(
        "req",
        "-new",
        *ec,
        "-keyout",
        directory / "tsa.key",
        "-out",
        directory / "tsa.csr",
        "-subj",
        f"/CN={name}",
        "-config",
        config,
    )
    _openssl("x509", "-req", "-in", directory / "tsa.csr", "-CA", directory / "ca.pem",
             "-CAkey", directory / "ca.key", "-CAcreateserial", "-out", directory / "tsa.pem",
             "-days", "2", "-extfile", config, "-extensions", "tsa_ext")  # fmt: skip
    bundle = directory / "tsa-certs.pem"
    bundle.write_bytes((directory / "tsa.pem").read_bytes() + (directory / "ca.pem").read_bytes())
    return bundle


@contextmanager
def local_tsa(directory: Path) -> Iterator[LocalTsa]:
    """Serve ``openssl ts -reply`` at http://127.0.0.1:<port>/ until the block ends."""
    certs = make_certificates(directory, "auditlog test TSA")
    lock = threading.Lock()  # openssl ts keeps its serial number in a file

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = self.rfile.read(int(self.headers["Content-Length"]))
            with lock, tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "q.tsq").write_bytes(query)
                _openssl("ts", "-reply", "-config", directory / "openssl.cnf", "-queryfile",
                         Path(tmp) / "q.tsq", "-signer", directory / "tsa.pem", "-inkey",
                         directory / "tsa.key", "-out", Path(tmp) / "r.tsr")  # fmt: skip
                answer = (Path(tmp) / "r.tsr").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalTsa(f"http://127.0.0.1:{server.server_address[1]}/", certs, directory)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
