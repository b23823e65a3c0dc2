"""Guards of the HTTP ingress: a bearer token that cannot silently turn off, bounded metric labels.

Pure logic (no Serve, no FastAPI at import time) so the rules are unit-tested directly.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from codesense_ray.errors import InvalidConfig

UNMATCHED_ROUTE = "<unmatched>"
"""Metric label of every request that matches no route: random paths must not grow `/metrics`."""


def require_auth_token(env_name: str | None) -> str | None:
    """The bearer token named by `serve.auth_token_env`, or `None` when auth is not configured.

    A configured but unset or blank variable is an error, never "auth off": a typo in a Secret's name
    must stop the rollout instead of exposing the API. Surrounding whitespace is dropped (files mounted
    from Kubernetes Secrets often end in a newline, and HTTP strips it from header values).
    """
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if value is None or not value.strip():
        state = "is not set" if value is None else "is empty"
        raise InvalidConfig(
            f"serve.auth_token_env: environment variable {env_name} {state}; refusing to serve without auth (set it, or remove serve.auth_token_env)"
        )
    return value.strip()


def bearer_token_matches(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>` with the scheme in any case (RFC 9110), compared in constant time."""
    if not header or not token:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Bytes on both sides: compare_digest refuses non-ASCII str, and the header is client-controlled.
    given = credentials.strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, token.encode("utf-8"))


def route_template(app: Any, scope: dict) -> str:
    """The route template a request matches (`/v1/search`), or `UNMATCHED_ROUTE` for unknown paths.

    A wrong method on a known path keeps the path's template: the set of labels stays the set of routes.
    """
    from starlette.routing import Match

    partial = None
    for route in getattr(app, "routes", ()):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return getattr(route, "path", UNMATCHED_ROUTE)
        if match == Match.PARTIAL and partial is None:
            partial = getattr(route, "path", None)
    return partial or UNMATCHED_ROUTE
