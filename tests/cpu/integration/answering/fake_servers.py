"""Local HTTP servers speaking the real wire protocols of OpenAI-compatible chat, Gemini, and Langfuse, so the
real SDKs are exercised end to end without the network.

Each server records the requests it got (`.requests`) and can be switched into failure modes (`.mode`).
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes | None = None
    content_type: str = "application/json"
    chunks: list[bytes] | None = None  # streamed one by one, connection closed at the end
    delay_s: float = 0.0


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status=status, body=json.dumps(obj).encode())


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 with a random port; `route(request) -> Response`."""

    def __init__(self, route: Callable[[Request], Response]) -> None:
        self.route = route
        self.requests: list[Request] = []
        self.mode = "ok"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, unquote(parts.path), parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}, body)
                outer.requests.append(req)
                resp = outer.route(req)
                if resp.delay_s:
                    time.sleep(resp.delay_s)
                try:
                    self.send_response(resp.status)
                    self.send_header("Content-Type", resp.content_type)
                    if resp.chunks is None:
                        data = resp.body or b""
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                    else:
                        self.send_header("Cache-Control", "no-cache")
                        self.send_header("Connection", "close")
                        self.end_headers()
                        for chunk in resp.chunks:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def sse(events: list[Any], *, done: bool = False, sep: bytes = b"\n\n") -> list[bytes]:
    """Server-sent events: one `data: <json>` per event; `data: [DONE]` at the end for OpenAI."""
    chunks = [b"data: " + json.dumps(e).encode() + sep for e in events]
    if done:
        chunks.append(b"data: [DONE]" + sep)
    return chunks


# --- OpenAI-compatible /v1/chat/completions -----------------------------------------------------------
def openai_route(server_state: dict[str, Any]) -> Callable[[Request], Response]:
    """`POST /v1/chat/completions`: a JSON completion, or SSE chunks ending with `data: [DONE]` when `stream`."""

    def route(req: Request) -> Response:
        mode = server_state["server"].mode
        if req.method != "POST" or req.path != "/v1/chat/completions":
            return json_response({"error": {"message": f"no route {req.path}", "type": "invalid_request_error"}}, 404)
        if mode == "error500":
            return json_response({"error": {"message": "model worker crashed", "type": "server_error", "code": None}}, 500)
        if mode == "slow":
            return Response(delay_s=3.0, body=b"{}")
        body = req.json()
        model = body["model"]
        words = server_state.get("words", ["Tokens ", "are ", "verified ", "in ", "`verify_token` ", "[1]."])
        created = int(time.time())
        if body.get("stream"):
            events = [{"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": created, "model": model,
                       "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
            events += [{"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in words]
            events.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": created, "model": model,
                           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                               "usage": {"prompt_tokens": 42, "completion_tokens": len(words), "total_tokens": 42 + len(words)}})
            return Response(content_type="text/event-stream", chunks=sse(events, done=True))
        return json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(words)}, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 42, "completion_tokens": len(words), "total_tokens": 42 + len(words)},
        })

    return route


# --- Gemini REST v1beta --------------------------------------------------------------------------------
def gemini_route(server_state: dict[str, Any]) -> Callable[[Request], Response]:
    """`POST /{v1|v1beta}/models/{model}:generateContent` and `:streamGenerateContent?alt=sse` (SSE of GenerateContentResponse)."""

    def candidate(text: str, finish: str | None) -> dict[str, Any]:
        c: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        if finish:
            c["finishReason"] = finish
        return c

    def route(req: Request) -> Response:
        mode = server_state["server"].mode
        # google-genai 3.x defaults to `v1`; older SDKs and the REST docs use `v1beta`. Both speak the same JSON.
        version, _, rest = req.path.lstrip("/").partition("/")
        if req.method != "POST" or version not in ("v1", "v1beta") or not rest.startswith("models/"):
            return json_response({"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}, 404)
        if mode == "error500":
            return json_response({"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}, 500)
        if mode == "error403":
            return json_response({"error": {"code": 403, "message": "API key not valid.", "status": "PERMISSION_DENIED"}}, 403)
        if mode == "slow":
            return Response(delay_s=3.0, body=b"{}")
        model, _, method = rest.removeprefix("models/").partition(":")
        words = server_state.get("words", ["Tokens are ", "verified in ", "`verify_token` [1]."])
        usage = {"promptTokenCount": 42, "candidatesTokenCount": len(words), "totalTokenCount": 42 + len(words)}
        if method == "streamGenerateContent":
            events = []
            for i, w in enumerate(words):
                last = i == len(words) - 1
                e: dict[str, Any] = {"candidates": [candidate(w, "STOP" if last else None)], "modelVersion": model, "responseId": "r1"}
                if last:
                    e["usageMetadata"] = usage
                events.append(e)
            return Response(content_type="text/event-stream", chunks=sse(events, sep=b"\r\n\r\n"))
        if method == "generateContent":
            return json_response({"candidates": [candidate("".join(words), "STOP")], "usageMetadata": usage, "modelVersion": model, "responseId": "r1"})
        return json_response({"error": {"code": 404, "message": f"unknown method {method}", "status": "NOT_FOUND"}}, 404)

    return route


# --- Langfuse public API -------------------------------------------------------------------------------
@dataclass
class LangfuseState:
    public_key: str
    secret_key: str
    prompts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # name -> versions
    spans: list[Any] = field(default_factory=list)  # opentelemetry.proto Span messages
    span_attributes: list[dict[str, Any]] = field(default_factory=list)

    def add_prompt(self, name: str, messages: list[dict[str, str]], labels: list[str], config: Any = None, commit_message: str | None = None) -> dict[str, Any]:
        versions = self.prompts.setdefault(name, [])
        for v in versions:  # a label lives on exactly one version
            v["labels"] = [label for label in v["labels"] if label not in labels]
        prompt = {
            "name": name, "version": len(versions) + 1, "type": "chat",
            "prompt": [{"type": "chatmessage", **m} for m in messages],
            "config": config or {}, "labels": labels + (["latest"] if "latest" not in labels else []), "tags": ["codesense"],
            "commitMessage": commit_message,
        }
        for v in versions:
            v["labels"] = [label for label in v["labels"] if label != "latest"]
        versions.append(prompt)
        return prompt


def _attr_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def langfuse_route(server_state: dict[str, Any]) -> Callable[[Request], Response]:
    """Prompts (`GET/POST /api/public/v2/prompts[/{name}]`, Basic auth) and OTLP/HTTP trace ingestion
    (`POST /api/public/otel/v1/traces`, protobuf, gzip)."""

    def route(req: Request) -> Response:
        server = server_state["server"]
        state: LangfuseState = server_state["langfuse"]
        if server.mode == "down":
            return json_response({"message": "Service Unavailable"}, 503)
        expected = "Basic " + base64.b64encode(f"{state.public_key}:{state.secret_key}".encode()).decode()
        if req.headers.get("authorization") != expected:
            return json_response({"message": "Invalid credentials"}, 401)
        if req.path == "/api/public/otel/v1/traces" and req.method == "POST":
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

            body = gzip.decompress(req.body) if req.headers.get("content-encoding") == "gzip" else req.body
            export = ExportTraceServiceRequest.FromString(body)
            for rs in export.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        state.spans.append(span)
                        state.span_attributes.append({"name": span.name, "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                                                      "parent_span_id": span.parent_span_id.hex(),
                                                      **{a.key: _attr_value(a.value) for a in span.attributes}})
            return Response(body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf")
        if req.path == "/api/public/v2/prompts" and req.method == "POST":
            body = req.json()
            prompt = state.add_prompt(body["name"], [{"role": m["role"], "content": m["content"]} for m in body["prompt"]], body.get("labels") or [],
                                      body.get("config"), body.get("commitMessage"))
            return json_response(prompt)
        if req.path.startswith("/api/public/v2/prompts/") and req.method == "GET":
            name = req.path.removeprefix("/api/public/v2/prompts/")
            versions = state.prompts.get(name, [])
            label = (req.query.get("label") or [None])[0]
            version = (req.query.get("version") or [None])[0]
            if version is not None:
                found = [v for v in versions if v["version"] == int(version)]
            else:
                found = [v for v in versions if (label or "production") in v["labels"]]
            if not found:
                return json_response({"error": "LangfuseNotFoundError", "message": f"Prompt not found: '{name}'"}, 404)
            return json_response(found[-1])
        return json_response({"message": f"no route {req.method} {req.path}"}, 404)

    return route


def start(route_factory: Callable[[dict[str, Any]], Callable[[Request], Response]], **state: Any) -> tuple[FakeServer, dict[str, Any]]:
    server_state: dict[str, Any] = dict(state)
    server = FakeServer(route_factory(server_state))
    server_state["server"] = server
    return server.start(), server_state
