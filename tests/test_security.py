"""Hostile responses and secrets.

The URL policy is tested as a pure object with IP literals (no lookup, no connection), the
connect-time guard with a stand-in resolver and backend, and the whole path end to end against
the local server under the conftest network guard. No test sends a packet beyond 127.0.0.0/8:
where imgen would, the guard refuses the connection and the test fails on its log.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import socket
import stat
from pathlib import Path

import pytest

from conftest import API_KEY, files_holding_secrets
from fakeserver import FakeServer, make_image
from imgen.errors import DownloadError
from imgen.transport import http, urlpolicy
from imgen.transport.urlpolicy import UrlPolicy

PUBLIC_HTTPS = UrlPolicy.for_api("https://93.184.216.34")  # an API on a public address
PUBLIC_HTTP = UrlPolicy(allow_http=True)

# --- the URL policy, pure -------------------------------------------------------------------


def test_policy_for_api_hosts():
    assert PUBLIC_HTTPS == UrlPolicy(allow_http=False, internal=frozenset())
    assert UrlPolicy.for_api("http://127.0.0.1:8080") == UrlPolicy(True, frozenset({"loopback", "private"}))
    assert UrlPolicy.for_api("http://localhost:8080/v1") == UrlPolicy(True, frozenset({"loopback", "private"}))
    assert UrlPolicy.for_api("https://[::1]:8443") == UrlPolicy(False, frozenset({"loopback", "private"}))
    assert UrlPolicy.for_api("https://10.1.2.3") == UrlPolicy(False, frozenset({"private"}))
    assert UrlPolicy.for_api("http://169.254.10.20") == UrlPolicy(True, frozenset({"link-local"}))


def test_policy_for_api_resolves_names(monkeypatch):
    answers = {"gpu.lan": "192.168.1.20", "api.example.com": "93.184.216.34"}

    def fake_resolve(host, port=None):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port or 0))]

    monkeypatch.setattr(urlpolicy, "resolve", fake_resolve)
    assert UrlPolicy.for_api("http://gpu.lan:8000").internal == {"private"}
    assert UrlPolicy.for_api("https://api.example.com").internal == frozenset()
    assert UrlPolicy.for_api("https://nowhere.invalid").internal == frozenset()


@pytest.mark.parametrize(
    "url",
    [
        "https://images.example.com/a.png",
        "https://tos-cn-beijing.volces.com/x/y.png?X-Tos-Credential=AK%2F2026&X-Tos-Signature=abc%3D",
        "https://93.184.216.34/a.png",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/a.png",
        "HTTPS://IMAGES.EXAMPLE.COM/A.PNG",
        "https://cafe.be/x.png",  # hex letters only: still a name, not a number
    ],
)
def test_public_https_links_pass(url):
    PUBLIC_HTTPS.check(url)


@pytest.mark.parametrize(
    "url, words",
    [
        ("http://images.example.com/a.png", "plain http"),
        ("ftp://images.example.com/a.png", "ftp: URL"),
        ("file:///etc/passwd", "file: URL"),
        ("data:image/png;base64,iVBORw0KGgo=", "data: URL"),
        ("javascript:alert(1)", "javascript: URL"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "gopher: URL"),
        ("//images.example.com/a.png", "without a scheme"),
        ("https:///a.png", "no host"),
        ("https://[::1/a.png", "malformed"),
        ("https://images.example.com:99999/a.png", "malformed"),
        ("https://images.example.com/a.png\r\nX-Evil: 1", "control characters"),
        ("https://images.example.com/a b.png", "spaces"),
        ("", "empty"),
    ],
)
def test_malformed_and_foreign_links_are_refused(url, words):
    with pytest.raises(DownloadError) as info:
        PUBLIC_HTTPS.check(url)
    assert words in info.value.message
    assert "X-Evil" not in info.value.message and "passwd" not in info.value.message  # the URL is not echoed


def test_http_links_only_from_an_http_api():
    PUBLIC_HTTP.check("http://images.example.com/a.png")
    PUBLIC_HTTP.check("https://images.example.com/a.png")
    with pytest.raises(DownloadError, match="file: URL"):
        PUBLIC_HTTP.check("file:///etc/passwd")


INTERNAL = [
    ("http://127.0.0.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://localhost:8080/", "loopback"),
    ("http://metadata.localhost/", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://2852039166/latest/meta-data/", "link-local"),
    ("http://[::ffff:a9fe:a9fe]/", "link-local"),
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),
    ("http://[2002:a9fe:a9fe::1]/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://[fd00:ec2::254]/", "private"),
    ("http://100.100.100.200/", "reserved"),
    ("http://0.0.0.0/", "reserved"),
    ("http://224.0.0.1/", "reserved"),
]


@pytest.mark.parametrize("url, kind", INTERNAL)
def test_internal_addresses_are_refused_from_a_public_api(url, kind):
    with pytest.raises(DownloadError) as info:
        PUBLIC_HTTP.check(url)
    assert "refusing to download from" in info.value.message and kind in info.value.message


def test_a_local_api_may_link_to_its_own_machine_and_lan_but_not_metadata():
    local = UrlPolicy.for_api("http://127.0.0.1:8080")
    local.check("http://127.0.0.1:9000/files/a.png")
    local.check("http://localhost:9000/files/a.png")
    local.check("http://192.168.1.5/a.png")
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://100.100.100.200/"):
        with pytest.raises(DownloadError, match="refusing"):
            local.check(url)


def test_a_lan_api_may_not_link_to_this_machine():
    lan = UrlPolicy.for_api("http://192.168.1.20:8000")
    lan.check("http://192.168.1.21/a.png")
    for url in ("http://127.0.0.1/", "http://localhost/", "http://169.254.169.254/"):
        with pytest.raises(DownloadError, match="refusing"):
            lan.check(url)


def test_check_address_names_the_host_and_what_it_resolved_to():
    with pytest.raises(DownloadError) as info:
        PUBLIC_HTTPS.check_address("images.example.com", ipaddress.ip_address("169.254.169.254"))
    assert "images.example.com (169.254.169.254)" in info.value.message and "link-local" in info.value.message
    PUBLIC_HTTPS.check_address("images.example.com", ipaddress.ip_address("93.184.216.34"))


# --- the connect-time guard, with a stand-in resolver and backend --------------------------


class RecordingBackend:
    """An httpcore backend that connects nowhere: it records what it was asked to reach."""

    def __init__(self):
        self.calls = []

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.calls.append((host, port))
        return "stream"

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise AssertionError("not used")

    def sleep(self, seconds):
        pass


@pytest.fixture
def fake_dns(monkeypatch):
    answers: dict[str, list[str]] = {}

    def fake_resolve(host, port=None):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(urlpolicy, "resolve", fake_resolve)
    return answers


@pytest.mark.parametrize(
    "addresses",
    [["169.254.169.254"], ["93.184.216.34", "10.0.0.7"], ["::ffff:127.0.0.1"], ["fd00:ec2::254"]],
)
def test_guard_refuses_a_name_that_resolves_inward(fake_dns, addresses):
    fake_dns["images.example.com"] = addresses
    inner = RecordingBackend()
    guard = urlpolicy.guarded_backend(inner)
    with urlpolicy.active(PUBLIC_HTTPS), pytest.raises(DownloadError, match="refusing to download from images.example.com"):
        guard.connect_tcp("images.example.com", 443)
    assert inner.calls == []  # refused before any connection


def test_guard_connects_to_the_address_it_checked(fake_dns):
    fake_dns["images.example.com"] = ["93.184.216.34"]
    inner = RecordingBackend()
    guard = urlpolicy.guarded_backend(inner)
    with urlpolicy.active(PUBLIC_HTTPS):
        guard.connect_tcp("images.example.com", 443)
    assert inner.calls == [("93.184.216.34", 443)]  # not the name: no second lookup to rebind
    guard.connect_tcp("api.example.com", 443)  # no active policy (the API client's path): untouched
    assert inner.calls[-1] == ("api.example.com", 443)


def test_guard_reports_dns_failure_as_a_connect_error(fake_dns):
    import httpcore

    guard = urlpolicy.guarded_backend(RecordingBackend())
    with urlpolicy.active(PUBLIC_HTTPS), pytest.raises(httpcore.ConnectError, match="not known"):
        guard.connect_tcp("nowhere.invalid", 443)


def test_download_client_carries_the_guard(fake_dns, monkeypatch):
    """Through a real download client: a name resolving to the metadata address is refused,
    and the socket layer is never asked to connect."""
    attempts = []

    def no_connection(address, *args, **kwargs):
        attempts.append(address)
        raise OSError("blocked by the test")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    fake_dns["images.example.com"] = ["169.254.169.254"]
    with http.download_client(5.0) as client, urlpolicy.active(PUBLIC_HTTP):
        with pytest.raises(DownloadError, match="link-local"):
            client.get("http://images.example.com/a.png")
    assert attempts == []


# --- hostile responses, end to end ----------------------------------------------------------


@pytest.fixture
def guarded(imgen, outdir, netguard, server):
    def go(*args: str, env: dict | None = None):
        res = imgen("generate", "-o", str(outdir), "--retries", "1", *args, env={**netguard, **(env or {})})
        assert netguard.attempts() == [], f"imgen tried to reach beyond loopback: {netguard.attempts()}"
        assert "Traceback" not in res.stderr
        return res

    return go


@pytest.mark.parametrize(
    "url, words",
    [
        ("file:///etc/passwd", "file: URL"),
        ("ftp://127.0.0.1/a.png", "ftp: URL"),
        ("gopher://127.0.0.1:6379/_INFO", "gopher: URL"),
        ("http://127.0.0.1:1/a.png\r\nX-Injected: 1", "control characters"),
        ("http://[::1/a.png", "malformed"),
        ("http://169.254.169.254/latest/meta-data/iam/", "link-local"),
    ],
)
def test_hostile_result_urls_are_refused(guarded, server, outdir, url, words):
    server.fault("status", status=200, body={"created": 1, "data": [{"url": url}]})
    res = guarded("a lighthouse", "-m", "dall-e-3")
    assert res.returncode == 9, res.stderr
    assert "refusing to download" in res.stderr and words in res.stderr and "hint:" in res.stderr
    assert "passwd" not in res.stderr and "X-Injected" not in res.stderr
    assert server.downloads() == [] and list(outdir.iterdir()) == []


@pytest.mark.parametrize(
    "location, env",
    [
        ("http://169.254.169.254/latest/meta-data/", {}),
        ("http://[::ffff:169.254.169.254]/latest/meta-data/", {}),
        ("http://2852039166/latest/meta-data/", {}),
        # a name that passes the URL check but resolves to the metadata address at connect time
        ("http://metadata.imgen-test/latest/meta-data/", {"IMGEN_NETGUARD_HOSTS": "metadata.imgen-test=169.254.169.254"}),
    ],
)
def test_redirect_to_the_metadata_address_is_refused(guarded, server, outdir, location, env):
    server.fault("dl_redirect", location=location)
    res = guarded("a lighthouse", "-m", "dall-e-3", env=env)
    assert res.returncode == 9, res.stderr
    assert "refusing to download from" in res.stderr and "link-local" in res.stderr
    assert len(server.downloads()) == 1  # the first hop only; not retried
    assert list(outdir.iterdir()) == []


def test_redirects_are_followed_and_the_key_never_goes_to_a_download(guarded, server, outdir):
    server.fault("dl_redirect", times=2, status=307)  # to the same signed URL, twice
    res = guarded("a lighthouse", "-m", "dall-e-3")
    assert res.returncode == 0, res.stderr
    downloads = server.downloads()
    assert len(downloads) == 3
    for request in downloads:
        assert "authorization" not in request.headers and "cookie" not in request.headers
        assert API_KEY not in json.dumps(request.headers) and API_KEY.encode() not in request.body
    api = server.api_requests()
    assert api[0].headers["authorization"] == f"Bearer {API_KEY}"


def test_the_api_redirecting_is_not_followed(guarded, server):
    server.fault("status", status=302, headers={"Location": f"{server.base_url}/collect"}, body={})
    res = guarded("a lighthouse")
    assert res.returncode != 0 and "302" in res.stderr
    assert [r.path for r in server.requests] == ["/v1/images/generations"]  # the key went nowhere else


def test_server_supplied_names_never_become_paths(guarded, server, outdir, tmp_path):
    png = base64.b64encode(make_image("hostile").to_bytes()).decode()
    body = {
        "created": 1,
        "data": [{"b64_json": png, "revised_prompt": "../../../../tmp/owned", "size": "../../x", "url": None}],
        "output_format": "../../../evil.sh",
        "size": "/etc/cron.d/x",
    }
    server.fault("status", status=200, body=body)
    before = {p for p in tmp_path.rglob("*")}
    res = guarded("a lighthouse", "-m", "gpt-image-1", "--name", "{slug}-{index}.{ext}")
    assert res.returncode == 0, res.stderr
    assert res.lines == [str(outdir / "a-lighthouse-1.png")]
    created = {p for p in tmp_path.rglob("*")} - before - {tmp_path / "netguard.log"}
    assert created == {outdir / "a-lighthouse-1.png"}


def test_a_huge_base64_answer_is_refused_by_the_size_limit(guarded, server, outdir):
    server.image_bytes = 300_000
    res = guarded("a lighthouse", "-m", "gpt-image-1", "--max-download", "100K")
    assert res.returncode == 9 and "larger than the 100 KiB limit" in res.stderr
    assert list(outdir.iterdir()) == []


# --- secrets ----------------------------------------------------------------------------------


@pytest.fixture
def other_server():
    """A server expecting a different key: the canary key is the one it rejects."""
    with FakeServer(api_key="sk-the-right-one-0000") as srv:
        yield srv


@pytest.mark.parametrize("debug", [["--debug"], []])
def test_debug_traceback_never_shows_the_key(imgen, other_server, netguard, debug):
    env = {**netguard, "IMGEN_BASE_URL": other_server.base_url}
    if not debug:
        env["IMGEN_DEBUG"] = "1"
    res = imgen("generate", "a lighthouse", *debug, env=env)  # the fixture asserts the key is absent
    assert res.returncode == 4
    assert "Traceback" in res.stderr and "AuthError" in res.stderr
    assert "sk-..." in res.stderr or "Incorrect API key" in res.stderr


def test_debug_network_error_never_shows_the_key(imgen, netguard):
    res = imgen("generate", "a lighthouse", "--debug", "--timeout", "1", "--retries", "0",
                env={**netguard, "IMGEN_BASE_URL": "https://api.imgen-test.invalid"})
    assert res.returncode == 7 and "Traceback" in res.stderr and "could not resolve" in res.stderr


SIGNED = ("X-Tos-Signature", "X-Tos-Credential", "/files/")


def test_signed_urls_stay_out_of_logs(guarded, server, outdir):
    # Retries, a redirect and an error, all under -v: stderr narrates each, never the link.
    server.fault("dl_cut", content_length=False)
    server.fault("dl_reset")
    server.fault("dl_redirect")
    server.fault("dl_status", status=503)
    res = guarded("a lighthouse", "-m", "dall-e-3", "-v", "--retries", "4")
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("retry") >= 3
    assert not [s for s in SIGNED if s in res.stderr], res.stderr
    assert "X-Tos-Signature" not in res.stdout  # paths by default: URLs only on request

    server.reset()
    server.fault("dl_403")
    res = guarded("a lighthouse", "-m", "dall-e-3", "-v")
    assert res.returncode == 9 and "altered or has expired" in res.stderr
    assert not [s for s in SIGNED if s in res.stderr], res.stderr


def test_signed_urls_are_data_on_request(guarded, server):
    res = guarded("a lighthouse", "-m", "dall-e-3", "--json", "-v")
    assert res.returncode == 0
    document = json.loads(res.stdout)
    assert document["images"][0]["url"] == server.served[0]["url"]  # byte for byte, on stdout
    assert "X-Tos-Signature" not in res.stderr
    res = guarded("a lighthouse", "-m", "dall-e-3", "--no-download", "-v")
    assert res.lines[0].startswith(server.base_url + "/files/") and "X-Tos-Signature" not in res.stderr


@pytest.mark.parametrize("args", [["--dry-run"], ["--dry-run", "--json"], ["--dry-run", "-v", "--debug"]])
def test_dry_run_masks_the_key(imgen, server, args):
    res = imgen("generate", "a lighthouse", *args)  # the fixture asserts the key is absent
    assert res.returncode == 0
    assert "sk-..." + API_KEY[-4:] in res.stdout and "$COMETAPI_KEY" in res.stdout
    assert server.requests == []


def test_json_error_document_has_no_key(imgen, other_server, netguard):
    res = imgen("generate", "a lighthouse", "--json", env={**netguard, "IMGEN_BASE_URL": other_server.base_url})
    assert res.returncode == 4


def test_stored_key_lives_in_the_credentials_file_only(imgen, server, outdir, isolated_env, tmp_path, netguard):
    stored = imgen("config", "key", "set", input=API_KEY + "\n", key=None)
    assert stored.returncode == 0, stored.stderr
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a lighthouse\na harbour\n", encoding="utf-8")
    runs = [
        ("generate", "a lighthouse", "-o", str(outdir), "--json", "-v"),
        ("generate", "a lighthouse", "-m", "gpt-image-1", "-o", str(outdir), "--debug"),
        ("generate", "--batch", str(prompts), "--sidecar", "-o", str(outdir / "batch"), "--json"),
        ("config", "show"),
        ("config", "show", "--json"),
    ]
    for argv in runs:
        res = imgen(*argv, key=None, env=dict(netguard))
        assert res.returncode == 0, (argv, res.stderr)
    assert server.api_requests()[0].headers["authorization"] == f"Bearer {API_KEY}"  # the stored key was used
    credentials = Path(os.environ["IMGEN_CREDENTIALS"])
    assert API_KEY.encode() in credentials.read_bytes()  # the scan below would see a leak
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert files_holding_secrets(isolated_env, tmp_path) == []
    assert any(p.suffix == ".json" for p in (outdir / "batch").iterdir())  # sidecars were written and scanned
