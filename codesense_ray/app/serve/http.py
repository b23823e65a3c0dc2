"""The HTTP layer of the Serve ingress: wire format, auth and metrics middleware, error bodies, routes.

`create_api` builds the FastAPI app around an answerer and a retriever handle: every route shares the same
bearer-token check, route-template metric labels, UTF-8 body check and `{"error": {"type", "message"}}` bodies
(statuses from `codesense_ray.errors.ERROR_TABLE`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Iterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from codesense_ray.app.serve.http_guard import bearer_token_matches, route_template
from codesense_ray.errors import CodesenseError, GeneratorError, IndexNotBuilt, RepositoryNotFound, StorageLocked, http_status
from codesense_ray.retrieval.query_guard import InvalidQuery, check_query, utf8_problem

log = logging.getLogger("codesense.serve")


# --- errors across the deployment boundary (structured data, re-raised in the ingress) -------------
_REMOTE_ERRORS = {c.__name__: c for c in (RepositoryNotFound, IndexNotBuilt, StorageLocked, CodesenseError)}


def _as_error(err: Exception) -> dict:
    """A domain error as data: exceptions do not cross Serve's process boundary with their types intact."""
    if isinstance(err, GeneratorError):
        return {"__error__": {"type": "GeneratorError", "backend": err.backend, "reason": err.reason, "status": err.status}}
    return {"__error__": {"type": type(err).__name__, "message": str(err)}}


def _raise_remote_error(result: Any) -> Any:
    """The inverse of `_as_error` on the ingress side: re-raise the deployment's domain error, else pass through."""
    if isinstance(result, dict) and "__error__" in result:
        e = result["__error__"]
        if e["type"] == "GeneratorError":
            raise GeneratorError(e["backend"], e["reason"], e["status"])
        raise _REMOTE_ERRORS.get(e["type"], CodesenseError)(e["message"])
    return result


# --- wire format ----------------------------------------------------------------------------------
class SearchRequest(BaseModel):
    query: str = Field(..., description="Free-text or identifier query.")
    repo: str | list[str] | None = Field(None, description="Repository id(s) to search; all when omitted.")
    k: int | None = Field(None, ge=1, le=200, description="Number of hits.")


class AskRequest(BaseModel):
    question: str = Field(..., description="The question about the indexed code.")
    repo: str | list[str] | None = Field(None, description="Repository id(s) to answer from; all when omitted.")
    k: int | None = Field(None, ge=1, le=50, description="Chunks retrieved before the context is assembled.")
    stream: bool = Field(False, description="Server-sent events: `sources`, `token`..., then `answer` (or `error`).")


def _repo_ids(repo: str | list[str] | None) -> list[str]:
    if repo is None:
        return []
    return [repo] if isinstance(repo, str) else list(repo)


def error_status(err: Exception) -> int:
    """The HTTP status of a domain error, from the one table in `codesense_ray.errors` (500 otherwise)."""
    return http_status(err)


def _error_payload(err: Exception) -> dict:
    return {"error": {"type": type(err).__name__, "message": str(err)}}


HEALTHZ_RETRIEVER_TIMEOUT_S = 5.0
"""/healthz answers "ok" (alive) even when the retriever is busy longer than this with a heavy request."""


async def _awaitable(response):
    return await response


def create_api(
    answerer, retriever_handle, metrics, auth_token: str | None, generator: Any | None, *, max_query_chars: int = 4000
) -> FastAPI:
    api = FastAPI(title="codesense", version="1", description="Ask questions about your code; every link is verified.")
    # With auth on, everything but liveness needs the token: /docs and /openapi.json describe the API too.
    open_paths = {"/healthz"}

    @api.middleware("http")
    async def _auth_and_metrics(request: Request, call_next):
        started = time.perf_counter()
        path = request.url.path
        # Label by route template: raw paths (random 401 probes) would grow /metrics without bound.
        label = route_template(api, request.scope)
        request.state.authorized = not auth_token or bearer_token_matches(request.headers.get("authorization"), auth_token)
        if not request.state.authorized and path not in open_paths:
            metrics.observe(label, 401, time.perf_counter() - started)
            return JSONResponse({"error": {"type": "Unauthorized", "message": "missing or invalid bearer token"}}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        if request.method == "POST":
            problem = utf8_problem(await request.body())  # JSON must be UTF-8 (RFC 8259); else 422, not a 400/500
            if problem:
                metrics.observe(label, 422, time.perf_counter() - started)
                return JSONResponse({"error": {"type": "InvalidRequest", "message": problem}}, status_code=422)
        response = await call_next(request)
        if path != "/metrics":
            metrics.observe(label, response.status_code, time.perf_counter() - started)
        return response

    @api.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception):
        # A bug must still answer JSON (never a text/plain 500 with a traceback in the log only).
        log.exception("unhandled error in the ingress")
        return JSONResponse({"error": {"type": "InternalError", "message": f"internal error ({type(err).__name__})"}}, status_code=500)

    @api.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError):
        errors = err.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"error": {"type": "BadRequest", "message": "malformed JSON body"}}, status_code=400)
        if any(e.get("type") == "model_attributes_type" and tuple(e.get("loc", ())) == ("body",) for e in errors):
            message = "request body must be a JSON object (Content-Type: application/json)"
            return JSONResponse({"error": {"type": "BadRequest", "message": message}}, status_code=400)
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse({"error": {"type": "InvalidRequest", "message": f"{where}: {first.get('msg')}".strip(": ")}}, status_code=422)

    @api.get("/healthz")
    async def healthz(request: Request):
        # Async and awaiting only: liveness never waits for a threadpool slot that slow requests hold.
        detailed = request.state.authorized  # with auth on, callers without the token learn liveness only
        try:
            status = await asyncio.wait_for(_awaitable(retriever_handle.status.remote()), HEALTHZ_RETRIEVER_TIMEOUT_S)
        except asyncio.TimeoutError:
            return {"status": "ok", "retriever": "busy"} if detailed else {"status": "ok"}
        if not status.get("ready"):
            if not detailed:
                return JSONResponse({"status": "no_index"}, status_code=503)
            return JSONResponse({"status": "no_index", "message": "no index yet: run `codesense index`"}, status_code=503)
        if not detailed:
            return {"status": "ok"}
        info = await _awaitable(generator.handle.info.remote()) if generator else {"name": "extractive"}
        return {"status": "ok", "index": status, "generator": info}

    @api.get("/metrics")
    def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @api.post("/v1/search")
    async def search(req: SearchRequest):
        # Async end to end: awaiting the handle keeps the ingress's threads free under many concurrent clients.
        try:
            check_query(req.query, max_query_chars)
        except InvalidQuery as err:
            return JSONResponse(_error_payload(err), status_code=422)
        started = time.perf_counter()
        try:
            result = _raise_remote_error(await retriever_handle.search.remote(req.query, req.k, _repo_ids(req.repo)))
        except CodesenseError as err:
            return JSONResponse(_error_payload(err), status_code=error_status(err))
        metrics.stage("retrieve", time.perf_counter() - started)
        metrics.query_batch(result.get("batch"))
        # A JSONResponse of plain dicts: FastAPI's generic encoder walking every hit cost more than the search's fusion.
        return JSONResponse({"query": req.query, "hits": [h.to_dict() for h in result["hits"]], "seconds": round(time.perf_counter() - started, 4)})

    @api.post("/v1/ask")
    def ask(req: AskRequest):
        repo_ids = _repo_ids(req.repo)
        if req.stream:
            return StreamingResponse(_sse(answerer, req, repo_ids, metrics), media_type="text/event-stream")
        try:
            answer = answerer.ask(req.question, k=req.k, repo_ids=repo_ids)
        except CodesenseError as err:
            body = _error_payload(err)
            if isinstance(err, GeneratorError):
                body["sources"] = getattr(err, "sources", [])
            return JSONResponse(body, status_code=error_status(err))
        metrics.answer(answer)
        return answer.to_dict()

    return api


def _sse(answerer, req: AskRequest, repo_ids: list[str], metrics) -> Iterator[bytes]:
    def event(name: str, data: Any) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    try:
        for kind, value in answerer.ask_events(req.question, k=req.k, repo_ids=repo_ids, stream=True):
            if kind == "answer":
                metrics.answer(value)
                yield event("answer", value.to_dict())
            elif kind == "token":
                yield event("token", {"text": value})
            else:
                yield event(kind, value)
    except CodesenseError as err:
        body = _error_payload(err) | {"status": error_status(err)}
        if isinstance(err, GeneratorError):
            body["sources"] = getattr(err, "sources", [])
        yield event("error", body)
