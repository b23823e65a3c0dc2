"""`/v1/chat/completions` and `/v1/models` on the real Serve app (`codesense serve`), through the official `openai` SDK.

One app start for the module: the sample service indexed, auth on, a `payments` profile, and the real `openai`
generator backend pointed at a local server that speaks the OpenAI wire format (so tokens really stream).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import httpx
import openai
import pytest

from tests.cpu.integration.answering.fake_servers import openai_route, start
from tests.serving import running_serve
from tests.conftest import CODESENSE_BIN, PAYMENTS, write_config

pytestmark = pytest.mark.slow
TOKEN = "chat-test-token"
PERMALINK = "https://github.com/acme/payments/blob/4f1c2ab/"



@pytest.fixture(scope="module")
def llm():
    server, state = start(openai_route)
    yield server, state
    server.stop()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, llm):
    """Index the sample service, then `codesense serve` with auth, a chat profile and the OpenAI-compatible generator."""
    project = tmp_path_factory.mktemp("chat")
    shutil.copytree(PAYMENTS, project / "payments")
    server, _ = llm
    write_config(
        project,
        [{"id": "payments", "path": "payments", "web_url": "https://github.com/acme/payments", "ref": "4f1c2ab"}],
        index={"in_process_max_files": 1000},  # stages in-process: the Ray Data path is tested in test_indexing
        generator={"backend": "openai", "base_url": server.url + "/v1", "model": "qwen2.5-coder", "timeout_s": 5},
        serve={"auth_token_env": "CODESENSE_TEST_TOKEN"},
        tracing={"backend": "none"},
        chat={"profiles": {"payments": {"description": "The payments service", "repos": ["payments"], "k": 4}}},
    )
    env = dict(os.environ, CODESENSE_HOME=str(project / ".codesense"), CODESENSE_TEST_TOKEN=TOKEN)
    cfg = str(project / "codesense.yaml")
    subprocess.run([CODESENSE_BIN, "index", "--config", cfg, "--no-progress"], check=True, env=env, capture_output=True, timeout=600)
    with running_serve(cfg, env, project, timeout_s=240) as base:
        yield base


@pytest.fixture
def client(base_url):
    return openai.OpenAI(base_url=base_url + "/v1", api_key=TOKEN, max_retries=0, timeout=60)


def test_models_lists_the_profiles(client):
    """GET /v1/models lists the default profile and the configured one; retrieving an unknown id is a 404."""
    models = client.models.list()
    assert [m.id for m in models.data] == ["codesense", "payments"]
    assert {m.owned_by for m in models.data} == {"codesense"}
    assert client.models.retrieve("payments").id == "payments"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_completion_carries_verified_citations_and_sources(client, llm):
    """The assistant message is the verified answer (foreign link and bad [7] removed, permalinks added); sources ride along."""
    _, state = llm
    state["words"] = ["Bearer tokens are verified by `verify_bearer_token` [1]. ", "See https://evil.example.com/x [7]."]
    r = client.chat.completions.create(model="codesense", messages=[{"role": "user", "content": "How are bearer tokens verified?"}])
    text = r.choices[0].message.content
    assert r.object == "chat.completion" and r.model == "codesense" and r.choices[0].finish_reason == "stop"
    assert "evil.example.com" not in text and "[7]" not in text and PERMALINK in text
    extra = r.model_extra
    assert extra["sources"] and extra["sources"][0]["url"].startswith(PERMALINK)
    assert extra["citations"]["valid"] >= 1 and len(extra["citations"]["invalid"]) == 2
    assert r.system_fingerprint == "openai:qwen2.5-coder"


def test_earlier_messages_go_to_retrieval_not_to_the_prompt(client, llm):
    """A follow-up is retrieved with the earlier user message; the LLM prompt holds only the last question."""
    server, state = llm
    state["words"] = ["It is in `verify_bearer_token` [1]."]
    before = len(server.requests)
    messages = [
        {"role": "user", "content": "How does verify_bearer_token check the JWT signature?"},
        {"role": "assistant", "content": "It decodes the token."},
        {"role": "user", "content": "Which file holds that?"},
    ]
    r = client.chat.completions.create(model="payments", messages=messages)
    assert any(s["path"] == "app/auth/jwt.py" for s in r.model_extra["sources"])
    prompt = "\n".join(m["content"] for m in server.requests[before].json()["messages"])
    assert "Which file holds that?" in prompt and "check the JWT signature" not in prompt


def test_streaming_sends_chunks_then_sources(client, llm):
    """stream=True yields chat.completion.chunk deltas with no unverified link; the last chunk carries the sources."""
    _, state = llm
    state["words"] = ["Tokens ", "are ", "checked ", "in ", "`verify_bearer_token` ", "[1] ", "http://leak.example.com/a ", "done."]
    chunks = list(client.chat.completions.create(model="codesense", messages=[{"role": "user", "content": "How are tokens checked?"}], stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "verify_bearer_token" in text and "leak.example.com" not in text and PERMALINK in text
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.model_extra["sources"][0]["url"].startswith(PERMALINK)
    assert len({c.id for c in chunks}) == 1 and {c.object for c in chunks} == {"chat.completion.chunk"}


def test_wrong_or_missing_token_is_401(base_url):
    """Without the API token the OpenAI SDK gets a 401 with codesense's JSON error body."""
    bad = openai.OpenAI(base_url=base_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(model="codesense", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["type"] == "Unauthorized"
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


@pytest.mark.parametrize(
    "kwargs, exc, kind, fragment",
    [
        ({"model": "gpt-4o"}, openai.NotFoundError, "ModelNotFound", "available: codesense, payments"),
        ({"messages": []}, openai.UnprocessableEntityError, "InvalidRequest", "messages"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, openai.UnprocessableEntityError, "InvalidChatRequest", "role 'user'"),
        ({"messages": [{"role": "user", "content": "   "}]}, openai.UnprocessableEntityError, "InvalidQuestion", "empty question"),
        ({"extra_body": {"repo": "nope"}}, openai.NotFoundError, "RepositoryNotFound", "nope"),
        ({"model": "payments", "extra_body": {"repo": "other"}}, openai.UnprocessableEntityError, "InvalidChatRequest", "outside model 'payments'"),
        ({"stream": True, "model": "gpt-4o"}, openai.NotFoundError, "ModelNotFound", "gpt-4o"),
        ({"stream": True, "extra_body": {"repo": "nope"}}, openai.NotFoundError, "RepositoryNotFound", "nope"),
    ],
)
def test_bad_requests_are_4xx_with_the_api_error_body(client, kwargs, exc, kind, fragment):
    """Unknown model, bad messages, empty question, unknown or out-of-profile repo: 4xx `{"error": {type, message}}`, streamed or not."""
    args = {"model": "codesense", "messages": [{"role": "user", "content": "How are tokens verified?"}]} | kwargs
    with pytest.raises(exc) as err:
        client.chat.completions.create(**args)
    assert err.value.body["type"] == kind and fragment in err.value.body["message"]


def test_malformed_json_is_400(base_url):
    """A body that is not JSON is a 400, like the rest of the API."""
    r = httpx.post(base_url + "/v1/chat/completions", content=b"{bad", headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "BadRequest"


def test_generator_down_is_502_or_a_stream_error(client, llm):
    """LLM failure: 502 GeneratorError without streaming; with streaming the SDK raises the error event's message."""
    server, _ = llm
    server.mode = "error500"
    try:
        with pytest.raises(openai.InternalServerError) as err:
            client.chat.completions.create(model="codesense", messages=[{"role": "user", "content": "How are tokens verified?"}])
        assert err.value.status_code == 502 and err.value.body["type"] == "GeneratorError"
        with pytest.raises(openai.APIError, match="500"):
            list(client.chat.completions.create(model="codesense", messages=[{"role": "user", "content": "How are tokens verified?"}], stream=True))
    finally:
        server.mode = "ok"
