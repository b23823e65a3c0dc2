"""The Ray Serve app on a real embedded index, through `codesense serve`: every endpoint and error, SSE, auth.

The generator is the real `openai` backend pointed at a local server speaking the OpenAI wire format, so the
whole graph runs as in production: ingress (holding the retriever, embedded Qdrant's default) → generator
deployment; `split_app` runs the retriever as its own deployment (`serve.colocate_retriever: false`, the
layout a Qdrant server gets).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess

import httpx
import pytest

from tests.cpu.integration.answering.fake_servers import openai_route, start
from tests.conftest import CODESENSE_BIN, write_config
from tests.serving import running_serve

pytestmark = pytest.mark.slow
TOKEN = "s3cret-test-token"



@pytest.fixture(scope="module")
def llm():
    server, state = start(openai_route)
    yield server, state
    server.stop()


@pytest.fixture(scope="module")
def app(tmp_path_factory, llm):
    """Index the sample service, then start `codesense serve` with auth and the OpenAI-compatible generator."""
    yield from _serve_app(tmp_path_factory, llm, {})


@pytest.fixture(scope="module")
def split_app(tmp_path_factory, llm):
    """The same app with the retriever in its own deployment, reached through a Serve handle."""
    yield from _serve_app(tmp_path_factory, llm, {"colocate_retriever": False})


def _serve_app(tmp_path_factory, llm, serve: dict):
    import shutil

    from tests.conftest import PAYMENTS

    project = tmp_path_factory.mktemp("serve")
    shutil.copytree(PAYMENTS, project / "payments")
    server, _ = llm
    write_config(
        project,
        [{"id": "payments", "path": "payments", "web_url": "https://github.com/acme/payments", "ref": "4f1c2ab"}],
        index={"in_process_max_files": 1000},  # stages in-process: the Ray Data path is tested in test_indexing
        generator={"backend": "openai", "base_url": server.url + "/v1", "model": "qwen2.5-coder", "timeout_s": 5},
        serve={"auth_token_env": "CODESENSE_TEST_TOKEN", **serve},
        tracing={"backend": "none"},
        search={"query_cache_size": 0},  # every query reaches the model: the concurrency test compares real embeddings
    )
    env = dict(os.environ, CODESENSE_HOME=str(project / ".codesense"), CODESENSE_TEST_TOKEN=TOKEN)
    cfg = str(project / "codesense.yaml")
    subprocess.run([CODESENSE_BIN, "index", "--config", cfg, "--no-progress"], check=True, env=env, capture_output=True, timeout=600)
    with running_serve(cfg, env, project, timeout_s=240) as base:
        yield httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


def test_healthz_reports_index_without_auth(app):
    """/healthz needs no token (liveness only); with the token it reports the live collection, ref and generator."""
    r = httpx.get(str(app.base_url) + "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = app.get("/healthz")
    body = r.json()
    assert body["index"]["repos"] == {"payments": "4f1c2ab"} and body["generator"]["name"] == "openai"


def test_auth_required_on_api(app):
    """Without or with a wrong bearer token the API answers 401 with a JSON error."""
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.post(str(app.base_url) + "/v1/search", json={"query": "jwt"}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["type"] == "Unauthorized"


def test_search_endpoint_matches_cli_shape(app):
    """POST /v1/search returns ranked hits with commit-pinned GitHub links."""
    r = app.post("/v1/search", json={"query": "verify bearer token", "k": 3})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert len(hits) == 3 and hits[0]["path"] == "app/auth/jwt.py"
    assert hits[0]["url"].startswith("https://github.com/acme/payments/blob/4f1c2ab/app/auth/jwt.py#L")


def test_ask_returns_verified_answer(app, llm):
    """POST /v1/ask: the model's [1] citation becomes a verified permalink; sources and trace fields present."""
    _, state = llm
    state["words"] = ["Bearer tokens are verified by `verify_bearer_token` [1]. ", "See https://evil.example.com/x [7]."]
    r = app.post("/v1/ask", json={"question": "How are bearer tokens verified?", "repo": "payments"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"answer", "sources", "trace_id"}
    assert "evil.example.com" not in body["answer"] and "[7]" not in body["answer"]
    assert "Source: https://github.com/acme/payments/blob/4f1c2ab/" in body["answer"]
    assert body["citations"]["valid"] >= 1 and len(body["citations"]["invalid"]) == 2
    assert body["model"] == "openai:qwen2.5-coder"


def test_ask_streams_server_sent_events(app, llm):
    """"stream": true sends sources, token events (only verified text), and the verified answer last."""
    _, state = llm
    state["words"] = ["Tokens ", "are ", "checked ", "in ", "`verify_bearer_token` ", "[1] ", "http://leak.example.com/a ", "<HTTPS://LEAK.", "EXAMPLE.COM/b> ", "[do", "cs](//leak.example.com/c) ", "done."]
    with app.stream("POST", "/v1/ask", json={"question": "How are tokens checked?", "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    events = [(b.split("\n")[0].removeprefix("event: "), json.loads(b.split("\n")[1].removeprefix("data: "))) for b in raw.strip().split("\n\n")]
    kinds = [k for k, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "answer" and "token" in kinds
    streamed = "".join(d["text"] for k, d in events if k == "token")
    assert "leak.example.com" not in streamed.lower() and "verify_bearer_token" in streamed
    assert streamed == events[-1][1]["answer"] and "leak.example.com" not in raw.lower()


@pytest.mark.parametrize(
    "body, status, kind",
    [
        ({"question": "   "}, 422, "InvalidQuestion"),
        ({"question": "x" * 5000}, 422, "InvalidQuestion"),
        ({"question": "auth?", "repo": "nope"}, 404, "RepositoryNotFound"),
        ({"question": "auth?", "k": 0}, 422, "InvalidRequest"),
        ({"nothing": 1}, 422, "InvalidRequest"),
    ],
)
def test_ask_bad_input(app, body, status, kind):
    """Empty/oversized questions and bad fields are 422, an unknown repo is 404 — all JSON errors."""
    r = app.post("/v1/ask", json=body)
    assert r.status_code == status and r.json()["error"]["type"] == kind


def test_malformed_json_is_400(app):
    """A body that is not JSON is a 400 with a reason, not a 500."""
    r = app.post("/v1/ask", content=b"{bad", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]["message"]


def test_generator_down_is_502_with_sources(app, llm):
    """When the LLM endpoint fails, /v1/ask answers 502 with the reason and still returns the retrieved sources."""
    server, _ = llm
    server.mode = "error500"
    try:
        r = app.post("/v1/ask", json={"question": "How are bearer tokens verified?"})
    finally:
        server.mode = "ok"
    assert r.status_code == 502
    body = r.json()
    assert body["error"]["type"] == "GeneratorError" and "500" in body["error"]["message"]
    assert body["sources"] and body["sources"][0]["url"].startswith("https://github.com/acme/payments/blob/4f1c2ab/")


def test_metrics_exposes_requests_latency_and_citations(app):
    """/metrics speaks Prometheus text: request counters, stage latency histograms, citation validity."""
    app.post("/v1/search", json={"query": "jwt"})
    text = app.get("/metrics").text
    assert 'codesense_requests_total{path="/v1/search",status="200"}' in text
    assert "codesense_request_seconds_bucket" in text and "codesense_stage_seconds_bucket" in text
    assert "codesense_citation_validity_bucket" in text


CONCURRENT_QUERIES = [
    f"{q} ({i})"
    for i, q in enumerate(["verify bearer token", "refund a captured payment", "which scopes does an admin have", "signing key rotation"] * 8)
]


@pytest.mark.parametrize("which", ["app", "split_app"])
def test_32_concurrent_searches_succeed_with_the_hits_each_gets_alone(which, request):
    """32 searches at once all answer 200 with exactly the hits each query gets on its own (they were served in
    shared batches: the batch-size histogram shows batches > 1), and /healthz still reaches the retriever while
    they run — with the retriever in the ingress and as its own deployment."""
    app = request.getfixturevalue(which)
    alone = {q: _hit_keys(app.post("/v1/search", json={"query": q, "k": 5})) for q in CONCURRENT_QUERIES}

    async def together():
        async with httpx.AsyncClient(base_url=str(app.base_url), headers=app.headers, timeout=120) as client:
            searches = [asyncio.create_task(client.post("/v1/search", json={"query": q, "k": 5})) for q in CONCURRENT_QUERIES]
            health = await client.get("/healthz")
            return await asyncio.gather(*searches), health

    responses, health = asyncio.run(together())
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200][:2]
    assert {q: _hit_keys(r) for q, r in zip(CONCURRENT_QUERIES, responses)} == alone
    assert health.status_code == 200 and health.json()["index"]["repos"] == {"payments": "4f1c2ab"}
    batches = {m[0]: float(m[1]) for m in re.findall(r"^codesense_query_batch_size_(sum|count) (\S+)$", app.get("/metrics").text, re.M)}
    assert batches["count"] >= 2 * len(CONCURRENT_QUERIES) and batches["sum"] > batches["count"]


def _hit_keys(response) -> list[tuple[str, int, str]]:
    assert response.status_code == 200, response.text
    return [(h["path"], h["start_line"], h["url"]) for h in response.json()["hits"]]


def test_split_app_answers_through_the_retriever_deployment(split_app, llm):
    """With the retriever behind a handle, /v1/ask (a sync route: its search blocks on the handle) still answers
    with verified sources."""
    r = split_app.post("/v1/ask", json={"question": "How are JWT bearer tokens verified?"})
    assert r.status_code == 200, r.text
    assert any(s["path"].endswith("jwt.py") for s in r.json()["sources"])
