"""The clients' TLS context reads its CA certificates at the first handshake, not before, and
verifies exactly as httpx.create_ssl_context(trust_env=True) would.

The certificates are made here with openssl: a CA of our own (self-signed, so trusted by no
one) and a server certificate it signed for 127.0.0.1. The server is a small TLS endpoint on
loopback; for the end-to-end runs it relays the decrypted bytes to the fake image API.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import API_KEY, require_tool
from imgen.transport import http, tls


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path
    ca_dir: Path  # the CA alone, under its OpenSSL hash name, as SSL_CERT_DIR wants it


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def make_certs(where: Path) -> Certs:
    """A CA, and a certificate it signed for 127.0.0.1, in `where`."""
    openssl = require_tool("openssl", "openssl")

    def run(*args: str) -> str:
        return subprocess.run([openssl, *args], cwd=where, check=True, capture_output=True, text=True, timeout=60).stdout

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=imgen test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (where / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
        "-days", "2", "-extfile", "server.ext")
    ca_dir = where / "cadir"
    ca_dir.mkdir()
    shutil.copy(where / "ca.pem", ca_dir / f"{run('x509', '-hash', '-noout', '-in', 'ca.pem').strip()}.0")
    return Certs(where / "ca.pem", where / "server.pem", where / "server.key", ca_dir)


class TLSServer:
    """Accepts TLS on 127.0.0.1; each connection is answered with one fixed response, or relayed
    to `upstream` (host, port) in the clear. Handshakes it saw fail are kept in `refused`."""

    def __init__(self, certs: Certs, upstream: tuple[str, int] | None = None) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certs.cert, certs.key)
        self.upstream = upstream
        self.refused: list[str] = []
        self.handshakes = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.base_url = f"https://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> TLSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.refused.append(str(exc))
            raw.close()
            return
        self.handshakes += 1
        with conn:
            if self.upstream is None:
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                return
            with socket.create_connection(self.upstream, timeout=10) as up:
                back = threading.Thread(target=_pump, args=(up, conn), daemon=True)
                back.start()
                _pump(conn, up)
                back.join(timeout=10)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def tls_server(certs) -> Iterator[TLSServer]:
    with TLSServer(certs) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_context(monkeypatch):
    """The clients share one cached context: each test builds its own, from its own environment."""
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR", "SSLKEYLOGFILE"):
        monkeypatch.delenv(var, raising=False)
    http._tls.cache_clear()
    yield
    http._tls.cache_clear()


def loaded_cas(context: ssl.SSLContext) -> int:
    """How many CA certificates the context holds now, without making it load them."""
    return ssl.SSLContext.cert_store_stats(context)["x509_ca"]


# --- nothing is read before a handshake ----------------------------------------------------


def test_building_the_clients_reads_no_certificate():
    with http.api_client("https://api.example.invalid/v1", "sk-x", 5.0), http.download_client(5.0):
        context = http._tls()
    assert isinstance(context, tls.DeferredCAContext)
    assert loaded_cas(context) == 0


def test_a_plain_http_request_reads_no_certificate(server):
    with http.api_client(server.base_url, None, 5.0) as client:
        client.get("/v1/models")
    assert loaded_cas(http._tls()) == 0


def test_the_first_handshake_loads_the_bundle_once(tls_server, certs, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
    with http.api_client(tls_server.base_url, None, 5.0) as client:
        assert client.get("/").text == "ok"
        context = http._tls()
        assert loaded_cas(context) == 1
        assert client.get("/").text == "ok"  # the same bundle, not loaded twice
        assert loaded_cas(context) == 1


# --- verification is as strict as httpx's --------------------------------------------------


def test_a_certificate_from_an_unknown_ca_is_refused(tls_server):
    with http.api_client(tls_server.base_url, None, 5.0) as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get("/")
    assert tls_server.handshakes == 0


def test_the_download_client_refuses_it_too(tls_server):
    with http.download_client(5.0) as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get(f"{tls_server.base_url}/image.png")
    assert tls_server.handshakes == 0


def test_ssl_cert_file_naming_the_ca_makes_it_trusted(tls_server, certs, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
    with http.api_client(tls_server.base_url, None, 5.0) as client:
        assert client.get("/").text == "ok"
    with http.download_client(5.0) as client:
        assert client.get(f"{tls_server.base_url}/image.png").text == "ok"
    assert tls_server.handshakes == 2


def test_ssl_cert_dir_naming_the_ca_makes_it_trusted(tls_server, certs, monkeypatch):
    monkeypatch.setenv("SSL_CERT_DIR", str(certs.ca_dir))
    with http.api_client(tls_server.base_url, None, 5.0) as client:
        assert client.get("/").text == "ok"


def test_ssl_cert_file_wins_over_ssl_cert_dir(tls_server, certs, tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))  # holds nothing: would refuse
    with http.api_client(tls_server.base_url, None, 5.0) as client:
        assert client.get("/").text == "ok"


def test_a_trusted_ca_does_not_excuse_a_wrong_host_name(tls_server, certs, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
    # The certificate names 127.0.0.1 only; localhost reaches the same server under another name.
    with http.api_client(f"https://localhost:{tls_server.port}", None, 5.0) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED|match|mismatch"):
            client.get("/")


def test_the_bundle_is_certifis_without_the_variables():
    import certifi

    expected = ssl.create_default_context(cafile=certifi.where())
    assert tls.client_context().get_ca_certs() == expected.get_ca_certs()


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR", None])
def test_the_context_is_httpxs_once_loaded(variable, certs, monkeypatch):
    if variable is not None:
        monkeypatch.setenv(variable, str(certs.ca if variable == "SSL_CERT_FILE" else certs.ca_dir))
    monkeypatch.setenv("SSLKEYLOGFILE", os.devnull)
    ours, theirs = tls.client_context(), httpx.create_ssl_context(trust_env=True)
    assert ours.get_ca_certs() == theirs.get_ca_certs()
    assert ours.cert_store_stats() == theirs.cert_store_stats()
    for attribute in ("protocol", "options", "minimum_version", "maximum_version", "verify_mode", "verify_flags", "check_hostname",
                      "keylog_filename", "hostname_checks_common_name", "post_handshake_auth", "security_level"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert sorted(c["name"] for c in ours.get_ciphers()) == sorted(c["name"] for c in theirs.get_ciphers())


def test_a_missing_ca_file_fails_the_https_connection_not_the_http_one(tls_server, server, tmp_path, monkeypatch):
    missing = tmp_path / "missing.pem"
    monkeypatch.setenv("SSL_CERT_FILE", str(missing))
    with http.api_client(server.base_url, API_KEY, 5.0) as client:
        assert client.get("/v1/models").status_code == 200
    with http.api_client(tls_server.base_url, None, 5.0) as client, pytest.raises(httpx.ConnectError, match=f"CA certificates in {missing}"):
        client.get("/")
    assert tls_server.handshakes == 0


def test_threads_wrapping_at_once_load_the_bundle_once(certs):
    loads = []
    started = threading.Barrier(8)

    class Counting(tls.DeferredCAContext):
        def load_verify_locations(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
            loads.append(threading.get_ident())
            return super().load_verify_locations(*args, **kwargs)

    context = Counting(ssl.PROTOCOL_TLS_CLIENT, cafile=str(certs.ca))
    seen = []

    def wrap() -> None:
        started.wait()
        context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="127.0.0.1")
        seen.append(loaded_cas(context))

    threads = [threading.Thread(target=wrap) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(loads) == 1
    assert seen == [1] * 8  # no thread wrapped before the bundle was in


# --- end to end --------------------------------------------------------------------------


@pytest.fixture
def tls_api(certs, server) -> Iterator[TLSServer]:
    """The fake API behind TLS; its image links point at the relay too, so downloads are https."""
    with TLSServer(certs, upstream=(server.host, server.port)) as relay:
        server.base_url = relay.base_url
        yield relay


def test_generate_over_https_refuses_an_unknown_ca(imgen, tls_api, outdir):
    result = imgen("generate", "-m", "dall-e-2", "--retries", "0", "-o", str(outdir), "a paper boat")
    assert result.returncode == 7, result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert not list(outdir.iterdir())
    assert tls_api.handshakes == 0


def test_generate_over_https_trusts_the_ca_ssl_cert_file_names(imgen, tls_api, certs, outdir):
    result = imgen("generate", "-m", "dall-e-2", "-o", str(outdir), "a paper boat", env={"SSL_CERT_FILE": str(certs.ca)})
    assert result.returncode == 0, result.stderr
    assert [Path(line).parent for line in result.lines] == [outdir]
    assert tls_api.handshakes == 2  # the API call and the download, each verified


def test_a_missing_ca_file_is_named_when_https_needs_it(imgen, tls_api, outdir, tmp_path):
    missing = tmp_path / "missing.pem"
    result = imgen("generate", "-m", "dall-e-2", "--retries", "0", "-o", str(outdir), "a paper boat", env={"SSL_CERT_FILE": str(missing)})
    assert result.returncode == 7, result.stderr
    assert f"cannot read the CA certificates in {missing}" in result.stderr
    assert "internal error" not in result.stderr


def test_plain_http_never_reads_the_ca_file(imgen, outdir, tmp_path):
    result = imgen("generate", "-m", "dall-e-2", "-o", str(outdir), "a paper boat", env={"SSL_CERT_FILE": str(tmp_path / "missing.pem")})
    assert result.returncode == 0, result.stderr
