"""Which result URLs imgen will fetch: a hostile API must not turn imgen into a probe of the
user's own network (cloud metadata at 169.254.169.254, services on localhost or the LAN).

Rules: https only, or http when the API itself is plain http; no loopback, link-local, private
or otherwise non-public address unless the API's own host is of the same kind (a local server
hands out local links; that does not make the metadata service fair game). The URL is checked
before each hop of a redirect, and the download client checks every address a host name
resolves to at connect time (see `guarded_backend`), so DNS cannot point a vetted name inward.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import DownloadError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# What kinds of internal address a local API may hand out links to, by the kind of its own host.
# A loopback API is the user's own machine (a proxy, a dev server): its links may point at the
# machine or its LAN. Link-local stays separate: it is where cloud metadata services answer.
_ALLOWED_FOR_API = {
    "loopback": frozenset({"loopback", "private"}),
    "private": frozenset({"private"}),
    "link-local": frozenset({"link-local"}),
    "reserved": frozenset({"reserved"}),
}

_KIND_TEXT = {
    "loopback": "a loopback address (this machine)",
    "private": "a private-network address",
    "link-local": "a link-local address (where cloud metadata services answer)",
    "reserved": "a reserved, shared or multicast address",
}


def _embedded_v4(ip: IP) -> IP:
    """The IPv4 address an IPv6 one merely carries (mapped, 6to4, NAT64), else ip itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip.sixtofour:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def address_kind(ip: IP) -> str | None:
    """'loopback', 'link-local', 'private' or 'reserved' for a non-public address; None if public."""
    ip = _embedded_v4(ip)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"  # 100.64.0.0/10 (shared, where one cloud's metadata lives), and the like
    return None


def literal_address(host: str) -> IP | None:
    """The address a host names without any lookup: an IP literal, including the legacy numeric
    forms (2130706433, 0x7f.1, 127.1) that the C resolver accepts."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if text and all(c in "0123456789abcdefxABCDEFX." for c in text) and any(c.isdigit() for c in text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def host_kind(host: str) -> str | None:
    """The kind of a host as written (no DNS): localhost names count as loopback."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return "loopback"
    ip = literal_address(host)
    return address_kind(ip) if ip is not None else None


def resolve(host: str, port: int | None = None) -> list[tuple[Any, ...]]:
    """getaddrinfo for TCP; raises OSError (socket.gaierror) when the name does not resolve."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def _api_kinds(host: str) -> set[str]:
    kind = host_kind(host)
    if kind is not None or literal_address(host) is not None:
        return {kind} if kind else set()
    try:
        infos = resolve(host)
    except OSError:
        return set()  # the API call itself will report the DNS failure
    kinds = {address_kind(ipaddress.ip_address(info[4][0].split("%")[0])) for info in infos}
    return {k for k in kinds if k}


def _malformed(why: str) -> DownloadError:
    # The URL itself stays out of the message: even a broken signed link is not for logs.
    return DownloadError(
        f"refusing to download from a malformed URL: {why}",
        "the API sent a link no client can use; retry, or report it to the provider",
    )


@dataclass(frozen=True)
class UrlPolicy:
    allow_http: bool = False
    internal: frozenset[str] = frozenset()  # address kinds allowed (see address_kind)

    @classmethod
    def for_api(cls, base_url: str) -> UrlPolicy:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        allowed: set[str] = set()
        for kind in _api_kinds(host) if host else ():
            allowed |= _ALLOWED_FOR_API[kind]
        return cls(allow_http=parts.scheme == "http", internal=frozenset(allowed))

    def check(self, url: str) -> None:
        """Raise DownloadError unless url may be fetched. Pure: no DNS, no connection."""
        if not isinstance(url, str) or not url:
            raise _malformed("it is empty")
        if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
            raise _malformed("it holds spaces or control characters")
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a port out of range
        except ValueError as exc:
            raise _malformed(str(exc)) from None
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http"):
            raise DownloadError(
                f"refusing to download from {f'a {scheme}: URL' if scheme else 'a URL without a scheme'}: imgen fetches only https links"
                + (" (and http, as the API itself is http)" if self.allow_http else ""),
                "this looks like a hostile or misconfigured API response; nothing was fetched",
            )
        if scheme == "http" and not self.allow_http:
            raise DownloadError(
                "refusing to download over plain http: the API is https, so its links must be https too",
                "this looks like a hostile or misconfigured API response; nothing was fetched",
            )
        if not host:
            raise _malformed("it has no host")
        kind = host_kind(host)
        if kind is not None and kind not in self.internal:
            raise self._refusal(host, kind)

    def check_name(self, host: str) -> None:
        """Before a URL goes to a proxy (which resolves names itself, out of imgen's sight): refuse
        a name that resolves here to an address the policy refuses. A name that does not resolve
        here is the proxy's to resolve; literal addresses were judged by check()."""
        if literal_address(host) is not None:
            return
        try:
            infos = resolve(host)
        except OSError:
            return
        for info in infos:
            self.check_address(host, ipaddress.ip_address(info[4][0].split("%")[0]))

    def check_address(self, host: str, ip: IP) -> None:
        """Raise DownloadError unless a connection to ip (which host resolved to) is allowed."""
        kind = address_kind(ip)
        if kind is not None and kind not in self.internal:
            raise self._refusal(host, kind, ip)

    def _refusal(self, host: str, kind: str, ip: IP | None = None) -> DownloadError:
        where = host if ip is None or str(ip) == host.strip("[]") else f"{host} ({ip})"
        return DownloadError(
            f"refusing to download from {where}: {_KIND_TEXT[kind]}",
            "an API must not point imgen at internal hosts; only an API on such a network (--base-url) may",
        )


# --- the connect-time check --------------------------------------------------------------

_active = threading.local()


@contextmanager
def active(policy: UrlPolicy) -> Iterator[None]:
    """Make policy the one new download connections on this thread are checked against."""
    previous = getattr(_active, "policy", None)
    _active.policy = policy
    try:
        yield
    finally:
        _active.policy = previous


def current() -> UrlPolicy | None:
    return getattr(_active, "policy", None)


def guarded_backend(inner: Any) -> Any:
    """An httpcore network backend that resolves a host once, checks every address against the
    active policy, and connects to an address it checked: no second lookup to rebind."""
    import httpcore

    class _Guarded(httpcore.NetworkBackend):
        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # noqa: ANN001, ANN202
            policy = current()
            if policy is None:
                return inner.connect_tcp(host, port, timeout, local_address, socket_options)
            try:
                infos = resolve(host, port)
            except OSError as exc:
                raise httpcore.ConnectError(str(exc)) from exc
            addresses = []
            for info in infos:
                ip = ipaddress.ip_address(info[4][0].split("%")[0])
                policy.check_address(host, ip)  # any internal answer refuses the host outright
                addresses.append(info[4][0])
            last: Exception | None = None
            for address in dict.fromkeys(addresses):
                try:
                    return inner.connect_tcp(address, port, timeout, local_address, socket_options)
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    last = exc
            raise last or httpcore.ConnectError(f"no address for {host}")

        def connect_unix_socket(self, path, timeout=None, socket_options=None):  # noqa: ANN001, ANN202
            return inner.connect_unix_socket(path, timeout, socket_options)

        def sleep(self, seconds: float) -> None:
            inner.sleep(seconds)

    return _Guarded()
