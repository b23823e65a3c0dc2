"""Metric labels are route templates: random paths, probes and 401s cannot grow /metrics without bound."""

from __future__ import annotations

import random
import re
import string

import pytest

TOKEN = "tok-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROUTES = {"/healthz", "/metrics", "/v1/search", "/v1/ask", "/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect", "<unmatched>"}


def _labels(text: str) -> set[str]:
    return set(re.findall(r'codesense_requests_total\{path="([^"]*)"', text))


def _random_path(rng: random.Random) -> str:
    kinds = [
        lambda: "/" + "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, 40))),
        lambda: "/v1/" + "".join(rng.choices(string.ascii_lowercase, k=8)),
        lambda: "/v1/search/" + str(rng.randint(0, 10**9)),
        lambda: "/.env", lambda: "/wp-admin/setup.php", lambda: "/%2e%2e/%2e%2e/etc/passwd", lambda: "/healthz/x",
        lambda: "/" + "a/" * rng.randint(1, 30), lambda: "/v1/ask?x=" + str(rng.random()),
    ]  # fmt: skip
    return rng.choice(kinds)()


@pytest.mark.parametrize("auth", [True, False])
def test_random_paths_share_one_label(client_factory, auth):
    """3,000 random and probing paths (401s with auth on, 404s without) add one label, and /metrics stays small."""
    client, _ = client_factory(auth_token=TOKEN if auth else None)
    rng = random.Random(7)
    client.get("/healthz")
    client.post("/v1/search", json={"query": "jwt"}, headers=AUTH)
    baseline = len(client.get("/metrics", headers=AUTH).text)
    for _ in range(3000):
        client.get(_random_path(rng))
    text = client.get("/metrics", headers=AUTH).text
    labels = _labels(text)
    assert labels <= ROUTES and "<unmatched>" in labels
    assert len(text) < baseline + 4000  # one more label set, not 3,000


def test_known_routes_keep_their_template(client_factory):
    """Requests to real routes (any method, any status) are labelled with the route's own path."""
    client, _ = client_factory(auth_token=TOKEN)
    client.post("/v1/search", json={"query": "jwt"}, headers=AUTH)
    client.post("/v1/search", json={"query": ""}, headers=AUTH)  # 422
    client.get("/v1/search", headers=AUTH)  # 405: known path, wrong method
    client.post("/v1/ask", json={"question": "x"})  # 401 without a token
    text = client.get("/metrics", headers=AUTH).text
    assert re.search(r'codesense_requests_total\{path="/v1/search",status="405"\}', text)
    assert re.search(r'codesense_requests_total\{path="/v1/ask",status="401"\}', text)
    assert _labels(text) == {"/v1/search", "/v1/ask"}
