"""OpenAI-compatible `POST /v1/chat/completions` and `GET /v1/models` over the RAG answerer.

Any OpenAI client (the `openai` SDK, IDE assistants, chat UIs) can use codesense as a model:

- `model` picks an answer profile (`chat:` in codesense.yaml; `codesense` = every repository, the configured
  generator); `GET /v1/models` lists them.
- the **last user message is the question**; earlier user messages are conversation context for *retrieval*
  only (a follow-up like "and where is it tested?" still finds the right files), never added to the prompt.
- the assistant message is the verified answer (invalid citations removed, permalinks pinned to the indexed
  commit); the response also carries `sources`, `citations` and `trace_id` beside the OpenAI fields.
- `stream: true` sends `chat.completion.chunk` events made from the same verified event stream as `/v1/ask`
  (`RagAnswerer.ask_events`), then `data: [DONE]`. The last chunk carries the structured sources.
- an optional `repo` (string or list; `extra_body={"repo": ...}` in the SDK) narrows the profile's repositories.

The request models and the conversion are plain functions; `add_chat_routes` mounts them on the Serve ingress's
FastAPI app, where the API's auth, validation errors and metrics already apply.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from codesense_ray.errors import CodesenseError, InvalidChatRequest, ModelNotFound  # noqa: F401
from codesense_ray.config.interfaces import ChatConfig






class ChatMessage(BaseModel):
    # Clients send fields we have no use for (name, tool_calls, ...): ignored, not rejected.
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidChatRequest(f"messages: content part of type {part.get('type')!r} is not supported (text only)")
            parts.append(part["text"])
        return "\n".join(parts)


class ChatCompletionRequest(BaseModel):
    # Sampling options (temperature, top_p, max_tokens, ...) are accepted and ignored: the profile decides.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(..., min_length=1, description="An answer profile id from GET /v1/models.")
    messages: list[ChatMessage] = Field(..., min_length=1, description="The conversation; the last message is the user's question.")
    stream: bool = Field(False, description="Server-sent `chat.completion.chunk` events, then `data: [DONE]`.")
    n: int = Field(1, ge=1, le=1, description="Number of choices: codesense returns exactly one.")
    repo: str | list[str] | None = Field(None, description="codesense extension: narrow the profile to these repository ids.")


@dataclass(frozen=True)
class ChatPlan:
    """What a chat request asks the answerer: the question, the retrieval context, the scope."""

    model: str
    question: str
    context: str
    repo_ids: list[str]
    k: int | None


def plan_chat(req: ChatCompletionRequest, cfg: ChatConfig) -> ChatPlan:
    profile = cfg.profile(req.model)
    if profile is None:
        raise ModelNotFound(f"model: unknown model '{req.model}' (available: {', '.join(cfg.model_ids())})")
    last = req.messages[-1]
    if last.role != "user":
        raise InvalidChatRequest(f"messages: the last message must have role 'user' (the question), got '{last.role}'")
    question = last.text()
    earlier = [t for t in (m.text().strip() for m in req.messages[:-1] if m.role == "user") if t]
    wanted = [req.repo] if isinstance(req.repo, str) else list(req.repo or [])
    if profile.repos and wanted:
        outside = [r for r in wanted if r not in profile.repos]
        if outside:
            raise InvalidChatRequest(f"repo: '{outside[0]}' is outside model '{req.model}' (repos: {', '.join(profile.repos)})")
    repo_ids = wanted or list(profile.repos)
    return ChatPlan(req.model, question, retrieval_context(earlier, cfg.context_messages, cfg.context_chars), repo_ids, profile.k)


def retrieval_context(earlier: Sequence[str], messages: int, max_chars: int) -> str:
    """The last `messages` earlier user messages, oldest first, cut from the front to `max_chars`."""
    if messages <= 0 or max_chars <= 0:
        return ""
    text = "\n".join(earlier[-messages:])
    return text[-max_chars:]


class ConversationRetriever:
    """A retriever that searches with the conversation's earlier messages in front of the question."""

    def __init__(self, inner, context: str) -> None:
        self.inner = inner
        self.context = context

    def search(self, query: str, k: int | None = None, repo_ids: Sequence[str] = ()):
        return self.inner.search(f"{self.context}\n{query}" if self.context else query, k=k, repo_ids=repo_ids)

    def __getattr__(self, name: str) -> Any:  # file_line_count, rank_files, ...: unchanged
        if name == "inner" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)


def scoped_answerer(answerer, context: str):
    """`answerer` for one conversation: same generator, prompts, tracer and config; retrieval sees the context."""
    if not context:
        return answerer
    scoped = copy.copy(answerer)
    scoped.retriever = ConversationRetriever(answerer.retriever, context)
    return scoped


# --- wire format of the responses ------------------------------------------------------------------
def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion_body(answer: dict, model: str, created: int, cid: str) -> dict:
    """A `chat.completion` whose message is the verified answer, plus codesense's `sources`/`citations`/`trace_id`."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": answer.get("model"),  # the generator that answered, e.g. "openai:qwen2.5-coder"
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer["answer"]}, "finish_reason": "stop", "logprobs": None}],
        "sources": answer.get("sources", []),
        "citations": answer.get("citations", {}),
        "trace_id": answer.get("trace_id"),
    }


def chunk_body(cid: str, model: str, created: int, delta: dict, finish_reason: str | None = None, **extra: Any) -> dict:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        **extra,
    }


def remaining_text(streamed: str, answer: str, sources: Sequence[dict]) -> str:
    """What the client still needs after the streamed tokens so that its text ends as the verified answer.

    When the streamed text is a prefix of the verified answer (the verified stream guarantees it), that is the
    rest. Otherwise — a stream that masked links instead of verifying them — the streamed text already stands and
    only the verified source links are appended.
    """
    if answer.startswith(streamed):
        return answer[len(streamed) :]
    links = [f"[{i}] {s['url']}" for i, s in enumerate(sources, 1) if s.get("url")]
    return ("\n\n" + "\n".join(links)) if links else ""


def sse(data: Any) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def stream_chunks(
    events: Iterable[tuple[str, Any]],
    model: str,
    on_answer: Callable[[Any], None],
    error_body: Callable[[CodesenseError], dict],
) -> Iterator[bytes]:
    """`ask_events` as OpenAI chunk events: role first, a content delta per token, the rest and the sources last."""
    cid, created = completion_id(), int(time.time())
    yield sse(chunk_body(cid, model, created, {"role": "assistant", "content": ""}))
    streamed: list[str] = []
    try:
        for kind, value in events:
            if kind == "token" and value:
                streamed.append(value)
                yield sse(chunk_body(cid, model, created, {"content": value}))
            elif kind == "answer":
                on_answer(value)
                body = value.to_dict()
                rest = remaining_text("".join(streamed), body["answer"], body["sources"])
                if rest:
                    yield sse(chunk_body(cid, model, created, {"content": rest}))
                extra = {"sources": body["sources"], "citations": body["citations"], "trace_id": body["trace_id"], "system_fingerprint": body["model"]}
                yield sse(chunk_body(cid, model, created, {}, "stop", **extra))
    except CodesenseError as err:
        # OpenAI's streaming error shape: the SDK raises an APIError with this message.
        yield sse(error_body(err))
        return
    yield b"data: [DONE]\n\n"


def model_card(model_id: str, cfg: ChatConfig, created: int) -> dict:
    profile = cfg.profile(model_id)
    assert profile is not None
    return {"id": model_id, "object": "model", "created": created, "owned_by": "codesense", "description": profile.description, "repos": profile.repos}


# --- routes on the Serve ingress -------------------------------------------------------------------
def add_chat_routes(api, answerer, metrics, cfg: ChatConfig, error_status: Callable[[Exception], int], error_payload: Callable[[Exception], dict]) -> None:
    """Mount `/v1/chat/completions` and `/v1/models` on the ingress app (its auth and error handlers apply)."""
    from fastapi.responses import JSONResponse, StreamingResponse

    started = int(time.time())

    def status(err: CodesenseError) -> int:
        if isinstance(err, ModelNotFound):
            return 404
        if isinstance(err, InvalidChatRequest):
            return 422
        return error_status(err)

    def body(err: CodesenseError) -> dict:
        out = error_payload(err)
        if getattr(err, "sources", None) is not None:
            out["sources"] = err.sources
        return out

    @api.get("/v1/models")
    def list_models():
        return {"object": "list", "data": [model_card(m, cfg, started) for m in cfg.model_ids()]}

    @api.get("/v1/models/{model_id}")
    def get_model(model_id: str):
        if cfg.profile(model_id) is None:
            err = ModelNotFound(f"model: unknown model '{model_id}' (available: {', '.join(cfg.model_ids())})")
            return JSONResponse(body(err), status_code=404)
        return model_card(model_id, cfg, started)

    @api.post("/v1/chat/completions")
    def chat_completions(req: ChatCompletionRequest):
        try:
            plan = plan_chat(req, cfg)
            scoped = scoped_answerer(answerer, plan.context)
            if req.stream:
                events = scoped.ask_events(plan.question, k=plan.k, repo_ids=plan.repo_ids, stream=True)
                first = next(events)  # bad question, unknown repo, no index: an HTTP error, not a broken stream
                chained = _chain(first, events)
                return StreamingResponse(
                    stream_chunks(chained, plan.model, metrics.answer, lambda e: body(e) | {"status": status(e)}), media_type="text/event-stream"
                )
            answer = scoped.ask(plan.question, k=plan.k, repo_ids=plan.repo_ids)
        except CodesenseError as err:
            return JSONResponse(body(err), status_code=status(err))
        metrics.answer(answer)
        return completion_body(answer.to_dict(), plan.model, int(time.time()), completion_id())


def _chain(first: tuple[str, Any], rest: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    yield first
    yield from rest
