"""Reference images given as URLs, fetched and inlined for APIs that take no URL (Gemini).

Fetched like any result URL (the URL policy, redirects checked hop by hop, the size limit, the
bytes verified as an image), into a private temporary directory, then sent as a data URI."""

from __future__ import annotations

import base64
import tempfile
import time
from pathlib import Path

from ..errors import ImgenError
from ..files.refs import MAX_REFERENCE_BYTES
from ..files.writer import ImageWriter
from .hooks import Hooks
from .plan import Plan


def inline_references(plan: Plan, hooks: Hooks) -> None:
    refs = plan.request.fields.get("image") or []
    if not any(ref.startswith(("https://", "http://")) for ref in refs):
        return
    from ..transport import download, http, urlpolicy

    timeout = float(plan.settings["timeout"])
    policy = http.RetryPolicy(retries=int(plan.settings["retries"]))
    url_policy = urlpolicy.UrlPolicy.for_api(plan.base_url)
    inlined = []
    with tempfile.TemporaryDirectory(prefix="imgen-ref-") as tmp, http.download_client(timeout) as client:
        for number, ref in enumerate(refs, 1):
            if not ref.startswith(("https://", "http://")):
                inlined.append(ref)
                continue
            source = f"reference image {number}"
            try:
                saved = download.fetch(
                    client, ref, lambda: ImageWriter(Path(tmp), max_bytes=MAX_REFERENCE_BYTES, source=source), lambda ext: f"ref-{number}.{ext}",
                    policy=policy, url_policy=url_policy, deadline=time.monotonic() + timeout, on_retry=hooks.retry,
                )
            except ImgenError as exc:
                raise type(exc)(f"--image {ref}: {exc.message}", "the API takes no URL, so imgen fetches it first; "
                                "give a local file, or a URL this machine can fetch", code=exc.code, status=exc.status) from None
            data = saved.path.read_bytes()
            inlined.append(f"data:image/{saved.format};base64,{base64.b64encode(data).decode('ascii')}")
    plan.request.fields["image"] = inlined
