"""Downloads follow the proxy variables, as the API call does.

The proxy is a small forwarding HTTP proxy on 127.0.0.1 that records each request and passes
it on only to 127.0.0.1: with the conftest network guard, no traffic leaves loopback.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade", "proxy-authorization"}


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _forward(self) -> None:
        target = urlsplit(self.path)
        self.server.seen.append((self.command, self.path))
        if target.scheme != "http" or target.hostname != "127.0.0.1":
            self.send_error(403, "this proxy only reaches 127.0.0.1")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection("127.0.0.1", target.port or 80, timeout=30)
        try:
            upstream.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            upstream.close()

    do_GET = do_POST = _forward


@pytest.fixture
def proxy():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forward)
    server.daemon_threads = True
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_download_goes_through_the_proxy(imgen, server, outdir, netguard, proxy):
    address = f"http://127.0.0.1:{proxy.server_address[1]}"
    env = {
        **netguard,
        "HTTP_PROXY": address,
        "HTTPS_PROXY": address,
        "http_proxy": address,
        "https_proxy": address,
        "NO_PROXY": "",  # the usual localhost bypass would hide the proxy from this test
        "no_proxy": "",
        "ALL_PROXY": "",
        "all_proxy": "",
    }
    res = imgen("generate", "-m", "dall-e-3", "-o", str(outdir), "a lighthouse", env=env)
    assert res.returncode == 0, res.stderr
    assert netguard.attempts() == []
    gets = [path for method, path in proxy.seen if method == "GET"]
    assert any(urlsplit(path).path.startswith("/files/") for path in gets), proxy.seen
    assert all(path.startswith(server.base_url) for _, path in proxy.seen)
    assert len(res.lines) == 1 and outdir.joinpath(res.lines[0]).exists()


# An API on loopback may hand out its own network's addresses; never the metadata service's.
@pytest.mark.parametrize("address, kind", [("169.254.169.254", "link-local"), ("169.254.170.2", "link-local")])
def test_a_proxy_is_not_handed_a_name_that_resolves_to_an_internal_address(imgen, server, outdir, netguard, proxy, address, kind):
    """The proxy resolves names itself, past the connect-time check: the name is judged here first."""
    server.fault("status", status=200, body={"created": 1, "data": [{"url": "http://metadata.example/latest/meta-data/"}]})
    proxied = f"http://127.0.0.1:{proxy.server_address[1]}"
    env = {**netguard, "IMGEN_NETGUARD_HOSTS": f"metadata.example={address}", "HTTP_PROXY": proxied, "http_proxy": proxied,
           "HTTPS_PROXY": proxied, "https_proxy": proxied, "NO_PROXY": "", "no_proxy": "", "ALL_PROXY": "", "all_proxy": ""}
    res = imgen("generate", "-m", "dall-e-3", "-o", str(outdir), "a lighthouse", env=env)
    assert res.returncode == 9, res.stderr
    assert f"refusing to download from metadata.example ({address})" in res.stderr and kind in res.stderr
    assert [path for method, path in proxy.seen if method == "GET"] == []
    assert list(outdir.iterdir()) == []
