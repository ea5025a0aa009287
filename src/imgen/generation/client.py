"""What every API call of a generation shares: its client and retry policy, and reading its JSON."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .hooks import Connections
from .plan import Plan, require_key


@contextlib.contextmanager
def client_for(plan: Plan, connections: Connections | None) -> Iterator[tuple[Any, Any]]:
    """(client, retry policy): a batch's shared ones, or a client of this call's own."""
    from ..transport import http

    shared = connections or Connections()
    policy = shared.policy or http.RetryPolicy(retries=int(plan.settings["retries"]))
    if shared.api is not None:
        yield shared.api, policy
        return
    with http.api_client(plan.base_url, require_key(plan), float(plan.settings["timeout"])) as client:
        yield client, policy


def json_of(raw: bytes, response: Any) -> Any:
    from ..transport.http import json_body

    return json_body(
        raw, what=f"the API answered {response.status_code} with a body that", content_type=response.headers.get("content-type")
    )
