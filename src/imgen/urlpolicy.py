"""Which result URLs imgen will fetch: a hostile API must not turn imgen into a probe of the
user's own network (cloud metadata at 169.254.169.254, services on localhost or the LAN).

Rules: https only, or http when the API itself is plain http; no loopback, link-local,
private or otherwise non-public address unless the API's own host is one (a local server).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import DownloadError


def _is_internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_unspecified


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []  # let the connection attempt report the DNS failure
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


@dataclass
class UrlPolicy:
    allow_http: bool
    allow_internal: bool

    @classmethod
    def for_api(cls, base_url: str) -> UrlPolicy:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        internal = host == "localhost" or any(_is_internal(ip) for ip in _addresses(host)) if host else False
        return cls(allow_http=parts.scheme == "http", allow_internal=internal)

    def check(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not self.allow_http):
            raise DownloadError(
                f"refusing to download from a {parts.scheme or 'scheme-less'} URL: only https is accepted from an https API",
                "this looks like a hostile or misconfigured API response",
            )
        host = parts.hostname
        if not host:
            raise DownloadError("refusing to download from a URL without a host", "the API sent a malformed URL")
        if self.allow_internal:
            return
        if host == "localhost" or host.endswith(".localhost") or any(_is_internal(ip) for ip in _addresses(host)):
            raise DownloadError(
                f"refusing to download from {host}: it is a loopback, link-local or private address",
                "a public API must not point imgen at internal hosts; use a base URL on that network to allow it",
            )
