"""The TLS context of both clients: httpx's verification, with the CA certificates read at the
first handshake.

Reading the bundle costs ~20 ms, paid by every run that built a client, even one that only
speaks plain http:// to a local server. The context is set up as httpx.create_ssl_context(
trust_env=True) sets it up (ssl.create_default_context: TLS client, CERT_REQUIRED, host names
checked, SSLKEYLOGFILE), and the locations it will load are chosen at once, from the environment
as it is then; only the loading waits until a socket or a BIO is wrapped, the first moment a
certificate can be checked against them.
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
from collections.abc import Mapping
from typing import Any


class DeferredCAContext(ssl.SSLContext):
    """An ssl.SSLContext that loads its verify locations before its first socket or BIO is wrapped;
    with neither a file nor a directory, certifi's bundle, as httpx would."""

    def __init__(self, protocol: int = ssl.PROTOCOL_TLS_CLIENT, *, cafile: str | None = None, capath: str | None = None) -> None:
        # ssl.SSLContext.__new__ has taken the protocol already; it has no __init__ to call.
        self._cafile, self._capath = cafile, capath
        self._loaded = False
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:  # downloads connect from worker threads: one load, and none seen half done
            if self._loaded:
                return
            cafile, capath = self._cafile, self._capath
            if cafile is None and capath is None:
                import certifi  # its importlib.resources cost ~1 ms: not paid before a handshake

                cafile = certifi.where()
            try:
                self.load_verify_locations(cafile=cafile, capath=capath)
            except ssl.SSLError:
                raise
            except OSError as exc:
                # Read at client creation, a missing file was a bare FileNotFoundError; at connect time
                # the message is all that reaches the user, so it names the file.
                raise ssl.SSLError(f"cannot read the CA certificates in {cafile or capath}: {exc.strerror or exc}") from exc
            self._loaded = True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load()
        return super().wrap_bio(*args, **kwargs)

    # What the context trusts reads the same before the first handshake as after it.
    def get_ca_certs(self, binary_form: bool = False) -> list[Any]:
        self._load()
        return super().get_ca_certs(binary_form)

    def cert_store_stats(self) -> dict[str, int]:
        self._load()
        return super().cert_store_stats()


def verify_locations(environ: Mapping[str, str] = os.environ) -> tuple[str | None, str | None]:
    """(cafile, capath) as httpx chooses them with trust_env: SSL_CERT_FILE, else SSL_CERT_DIR;
    (None, None) means certifi's bundle."""
    if environ.get("SSL_CERT_FILE"):
        return environ["SSL_CERT_FILE"], None
    if environ.get("SSL_CERT_DIR"):
        return None, environ["SSL_CERT_DIR"]
    return None, None


def client_context() -> DeferredCAContext:
    """A verifying client context whose CA certificates are read when the first connection needs them."""
    cafile, capath = verify_locations()
    context = DeferredCAContext(ssl.PROTOCOL_TLS_CLIENT, cafile=cafile, capath=capath)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment and hasattr(context, "keylog_filename"):
        context.keylog_filename = keylog
    return context
