"""The chat-completions conversion without a server: conversation → question + retrieval context, profiles, chunks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from pydantic import ValidationError

from codesense_ray.errors import CodesenseError
from codesense_ray.app.serve.chat import (
    ChatCompletionRequest,
    InvalidChatRequest,
    ModelNotFound,
    plan_chat,
    remaining_text,
    scoped_answerer,
    stream_chunks,
)
from codesense_ray.config.interfaces import ChatConfig

CFG = ChatConfig(profiles={"payments": {"description": "payments only", "repos": ["payments"], "k": 7}}, context_messages=2, context_chars=60)


def _req(**kw) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "codesense", "messages": [{"role": "user", "content": "q?"}]} | kw)


def test_last_user_message_is_the_question_and_earlier_ones_are_context():
    """The question is the last user message; the last two earlier *user* messages (not assistant/system) form the context."""
    msgs = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "user", "content": "How are tokens verified?"},
        {"role": "assistant", "content": "In jwt.py."},
        {"role": "user", "content": [{"type": "text", "text": "Where is that"}, {"type": "text", "text": "tested?"}]},
    ]
    plan = plan_chat(_req(messages=msgs), CFG)
    assert plan.question == "Where is that\ntested?"
    assert plan.context == "first\nHow are tokens verified?" and plan.repo_ids == [] and plan.k is None


def test_context_is_bounded_to_the_most_recent_characters():
    """Long history is cut from the front to `context_chars`, keeping the most recent words."""
    msgs = [{"role": "user", "content": "x" * 200 + " recent words"}, {"role": "user", "content": "q?"}]
    ctx = plan_chat(_req(messages=msgs), CFG).context
    assert len(ctx) == 60 and ctx.endswith("recent words")


def test_model_selects_the_profile_scope_and_depth():
    """`model: payments` answers from the payments repository with k=7; a `repo` outside the profile is refused."""
    plan = plan_chat(_req(model="payments"), CFG)
    assert plan.repo_ids == ["payments"] and plan.k == 7
    with pytest.raises(InvalidChatRequest, match="repo: 'billing' is outside model 'payments'"):
        plan_chat(_req(model="payments", repo="billing"), CFG)
    assert plan_chat(_req(repo=["a", "b"]), CFG).repo_ids == ["a", "b"]


@pytest.mark.parametrize(
    "kw, error, match",
    [
        ({"model": "gpt-4o"}, ModelNotFound, "unknown model 'gpt-4o' \\(available: codesense, payments\\)"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, InvalidChatRequest, "role 'user'"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, InvalidChatRequest, "image_url"),
    ],
)
def test_unanswerable_requests_name_the_problem(kw, error, match):
    """Unknown model, a conversation not ending in a user message, non-text content: errors naming the field."""
    with pytest.raises(error, match=match):
        plan_chat(_req(**kw), CFG)


def test_request_model_rejects_bad_bodies_and_ignores_sampling_options():
    """Empty messages, n>1 and unknown roles fail validation; temperature/top_p/max_tokens are accepted."""
    for bad in ({"messages": []}, {"n": 2}, {"messages": [{"role": "wizard", "content": "x"}]}):
        with pytest.raises(ValidationError):
            _req(**bad)
    assert _req(temperature=0.2, top_p=0.9, max_tokens=10, user="me").model == "codesense"


def test_profiles_config_rejects_bad_ids_and_shadowing():
    """Profile names must be model-id safe and may not reuse the default profile's name."""
    with pytest.raises(ValidationError, match="not a valid model id"):
        ChatConfig(profiles={"bad name": {}})
    with pytest.raises(ValidationError, match="default profile"):
        ChatConfig(profiles={"codesense": {}})


def test_scoped_answerer_searches_with_context_but_keeps_the_original():
    """The per-conversation answerer prefixes the context to searches; the shared answerer is untouched."""

    class Retriever:
        def __init__(self):
            self.queries = []

        def search(self, query, k=None, repo_ids=()):
            self.queries.append(query)
            return []

        def file_line_count(self, repo, path):
            return 3

    @dataclass
    class Answerer:
        retriever: Retriever = field(default_factory=Retriever)

    base = Answerer()
    scoped = scoped_answerer(base, "earlier question")
    scoped.retriever.search("follow-up")
    assert base.retriever.queries == ["earlier question\nfollow-up"]
    assert scoped.retriever.file_line_count("r", "p") == 3 and base.retriever is not scoped.retriever
    assert scoped_answerer(base, "") is base


def test_remaining_text_completes_the_stream_to_the_verified_answer():
    """A verified prefix gets the rest; a masked stream gets only the verified links appended."""
    assert remaining_text("Tokens are checked [1]", "Tokens are checked [1]\n\n[1] https://x/a#L1", []) == "\n\n[1] https://x/a#L1"
    masked = remaining_text("see [link withheld]", "see\n\n[1] https://x/a", [{"url": "https://x/a"}])
    assert masked == "\n\n[1] https://x/a"


@dataclass
class _Answer:
    text: str

    def to_dict(self):
        return {"answer": self.text, "sources": [{"url": "https://x/a#L1"}], "citations": {"valid": 1}, "trace_id": "t1", "model": "extractive"}


def _decode(chunks):
    out = []
    for raw in chunks:
        data = raw.decode().removeprefix("data: ").strip()
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_stream_chunks_are_openai_chunks_ending_with_sources_and_done():
    """Role chunk, one delta per token, the remainder, a stop chunk with sources and trace id, then [DONE]."""
    seen = []
    events = [("sources", []), ("token", "Tokens "), ("token", "checked [1]"), ("answer", _Answer("Tokens checked [1]\n\n[1] https://x/a#L1"))]
    out = _decode(stream_chunks(events, "codesense", seen.append, lambda e: {}))
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""} and out[-1] == "[DONE]"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in out[:-1])
    assert text == "Tokens checked [1]\n\n[1] https://x/a#L1"
    last = out[-2]
    assert last["choices"][0]["finish_reason"] == "stop" and last["sources"] == [{"url": "https://x/a#L1"}] and last["trace_id"] == "t1"
    assert {c["object"] for c in out[:-1]} == {"chat.completion.chunk"} and len({c["id"] for c in out[:-1]}) == 1
    assert len(seen) == 1


def test_stream_error_is_an_openai_error_event_without_done():
    """A domain error mid-stream becomes one `{"error": ...}` event and the stream ends without [DONE]."""

    def events():
        yield "sources", []
        raise CodesenseError("model down")

    out = _decode(stream_chunks(events(), "codesense", lambda a: None, lambda e: {"error": {"type": "X", "message": str(e)}}))
    assert out[-1] == {"error": {"type": "X", "message": "model down"}}


def test_scoped_answerer_of_a_monitored_answerer_is_a_separate_copy():
    """The Serve ingress's monitored answerer can be scoped per conversation: no recursion, original untouched."""
    from types import SimpleNamespace

    from codesense_ray.app.serve.chat import ConversationRetriever, scoped_answerer
    from codesense_ray.app.serve.instrumentation import _MonitoredAnswerer

    inner = SimpleNamespace(retriever=SimpleNamespace(search=lambda q, k=None, repo_ids=(): [q]), tracer=None)
    monitored = _MonitoredAnswerer(inner, monitor=SimpleNamespace())
    scoped = scoped_answerer(monitored, "earlier question")
    assert isinstance(scoped, _MonitoredAnswerer) and scoped is not monitored
    assert isinstance(scoped.retriever, ConversationRetriever)
    assert scoped.retriever.search("now?") == ["earlier question\nnow?"]
    assert monitored.retriever is inner.retriever and not isinstance(monitored.retriever, ConversationRetriever)
