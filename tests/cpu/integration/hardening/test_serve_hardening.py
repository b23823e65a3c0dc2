"""End-to-end repros through the real Serve app (`codesense serve`, auth on, embedded index): auth, health,
metric labels, query limits, invalid Unicode, and an adversarial query that must not stall /healthz."""

from __future__ import annotations

import os
import re
import subprocess
import threading

import httpx
import pytest

from tests.serving import running_serve
from tests.conftest import CODESENSE_BIN, write_config

pytestmark = pytest.mark.slow
TOKEN = "hardening-token-42"



@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Index the sample service, then start `codesense serve` with auth (extractive generator)."""
    import shutil

    from tests.conftest import PAYMENTS

    project = tmp_path_factory.mktemp("serve-hardening")
    shutil.copytree(PAYMENTS, project / "payments")
    write_config(
        project,
        [{"id": "payments", "path": "payments", "web_url": "https://github.com/acme/payments", "ref": "4f1c2ab"}],
        index={"in_process_max_files": 1000},  # stages in-process: the Ray Data path is tested in test_indexing
        serve={"auth_token_env": "CODESENSE_HARDENING_TOKEN"},
        tracing={"backend": "none"},
        search={"max_query_chars": 4000},
    )
    env = dict(os.environ, CODESENSE_HOME=str(project / ".codesense"), CODESENSE_HARDENING_TOKEN=TOKEN)
    cfg = str(project / "codesense.yaml")
    subprocess.run([CODESENSE_BIN, "index", "--config", cfg, "--no-progress"], check=True, env=env, capture_output=True, timeout=900)
    with running_serve(cfg, env, project, timeout_s=300) as url:
        yield url


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_auth_paths_and_health(base):
    """Anonymous: /healthz says only ok; /docs, /openapi.json, /metrics and the API are 401. Any-case scheme works."""
    assert httpx.get(base + "/healthz").json() == {"status": "ok"}
    detailed = httpx.get(base + "/healthz", headers=AUTH).json()
    assert detailed["index"]["repos"] == {"payments": "4f1c2ab"}
    for path in ("/docs", "/openapi.json", "/metrics"):
        assert httpx.get(base + path).status_code == 401
    for header in ("bearer " + TOKEN, "BEARER " + TOKEN):
        assert httpx.post(base + "/v1/search", json={"query": "jwt"}, headers={"Authorization": header}).status_code == 200
    for header in ("Bearer " + TOKEN + "x", "Basic " + TOKEN, TOKEN, "Bearer"):
        assert httpx.post(base + "/v1/search", json={"query": "jwt"}, headers={"Authorization": header}).status_code == 401
    assert httpx.get(base + "/openapi.json", headers=AUTH).status_code == 200


def test_invalid_unicode_and_oversized_queries(base):
    """Lone surrogates and invalid UTF-8 are 422 JSON on both endpoints; a query over the limit is 422."""
    for path, field in (("/v1/search", "query"), ("/v1/ask", "question")):
        for raw in (b'{"F": "\\ud800"}', b'{"F": "ab\xff"}', b'{"F": "x\xed\xa0\x80"}'):
            r = httpx.post(base + path, content=raw.replace(b"F", field.encode()), headers=AUTH | {"content-type": "application/json"})
            assert r.status_code == 422 and r.headers["content-type"] == "application/json", (path, raw, r.text)
    r = httpx.post(base + "/v1/search", json={"query": "a+" * 50_000}, headers=AUTH)
    assert r.status_code == 422 and "search.max_query_chars" in r.json()["error"]["message"]


def test_adversarial_query_does_not_stall_healthz(base):
    """Adversarial queries within the limit complete, and /healthz answers while they run."""
    results: list[int] = []

    def fire():
        results.append(httpx.post(base + "/v1/search", json={"query": "a+" * 1990 + "x.py"}, headers=AUTH, timeout=120).status_code)

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for t in threads:
        t.start()
    health = httpx.get(base + "/healthz", timeout=60)
    for t in threads:
        t.join()
    assert health.status_code == 200 and results == [200] * 4


def test_metric_labels_stay_bounded(base):
    """Hundreds of random 401 probes add one `<unmatched>` label, never their raw paths."""
    with httpx.Client(base_url=base) as client:
        for i in range(300):
            client.get(f"/probe-{i}/x{i * 7}")
    text = httpx.get(base + "/metrics", headers=AUTH).text
    labels = set(re.findall(r'codesense_requests_total\{path="([^"]*)"', text))
    assert "<unmatched>" in labels and not any(label.startswith("/probe-") for label in labels)
