"""Query length is capped like question length (`search.max_query_chars`): 422 over HTTP, one line in the CLI."""

from __future__ import annotations

import os
import subprocess

import pytest

from codesense_ray.retrieval.query_guard import InvalidQuery, check_query
from tests.conftest import CODESENSE_BIN, write_config


@pytest.mark.parametrize("n, ok", [(1, True), (99, True), (100, True), (101, False), (10_000, False)])
def test_limit_boundary(n, ok):
    """Exactly the limit passes, one character more is rejected with the limit and the config key named."""
    if ok:
        assert check_query("x" * n, 100) == "x" * n
    else:
        with pytest.raises(InvalidQuery, match=r"query too long: \d+ characters \(limit 100, `search.max_query_chars`\)"):
            check_query("x" * n, 100)


@pytest.mark.parametrize("text", ["", " ", "\n\t ", None, 42])
def test_empty_or_not_text(text):
    """Empty, blank and non-string queries are InvalidQuery (422), never a crash."""
    with pytest.raises(InvalidQuery, match="empty query"):
        check_query(text, 100)


@pytest.mark.parametrize("query", ["a+" * 2_001, "x" * 4001, "a/" * 50_000, "File \"" * 1000])
def test_http_oversized_query_is_422_before_search(client_factory, query):
    """Over-long /v1/search queries (adversarial ones included) are 422 and never reach the retriever."""
    client, handle = client_factory(auth_token=None)
    r = client.post("/v1/search", json={"query": query})
    assert r.status_code == 422 and "search.max_query_chars" in r.json()["error"]["message"] and handle.queries == []


def test_http_configured_limit_applies(client_factory):
    """The ingress uses the configured limit, not a constant."""
    client, handle = client_factory(auth_token=None, max_query_chars=20)
    assert client.post("/v1/search", json={"query": "x" * 20}).status_code == 200
    assert client.post("/v1/search", json={"query": "x" * 21}).status_code == 422


def test_config_key_validated(tmp_path):
    """`search.max_query_chars` below 10 is a config error naming the key."""
    from codesense_ray.config import config_from_dict
    from codesense_ray.errors import InvalidConfig

    with pytest.raises(InvalidConfig, match="search.max_query_chars"):
        config_from_dict({"search": {"max_query_chars": 3}}, tmp_path)


def test_cli_oversized_query_is_one_line(tmp_path):
    """`codesense search` with a query over the limit: exit 2, one stderr line naming the key (no index needed)."""
    write_config(tmp_path, [{"id": "p", "path": "p"}], search={"max_query_chars": 50})
    env = dict(os.environ, CODESENSE_HOME=str(tmp_path / ".codesense"))
    proc = subprocess.run([CODESENSE_BIN, "search", "a+" * 26, "--config", str(tmp_path / "codesense.yaml")], capture_output=True, text=True, env=env, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "search.max_query_chars" in lines[0]
