"""Ray Serve application (adapter): ingress (FastAPI) → retriever deployment → generator deployment.

A small service mesh inside one app: each deployment scales on its own (the retriever holds the embedding
model and the Qdrant client, the generator the LLM or its client), and the ingress talks to them through
deployment handles. Nothing binds at import time: `build_app(config)` does, so `serve run` and
`codesense serve` build the same graph from `codesense.yaml`.

    serve run serve_configs/local.yaml           # or: codesense serve --port 8000
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict
from typing import Any, Iterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from ray import serve

from codesense_ray.config import Config, config_from_dict, resolve_secret
from codesense_ray.errors import CodesenseError, IndexNotBuilt, RepositoryNotFound, StorageLocked, http_status
from codesense_ray.answering.generators.base import Generation, GeneratorError
from codesense_ray.app.serve.http_guard import UNMATCHED_ROUTE, bearer_token_matches, require_auth_token, route_template
from codesense_ray.retrieval.query_guard import InvalidQuery, check_query, utf8_problem

log = logging.getLogger("codesense.serve")


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


# --- deployments ----------------------------------------------------------------------------------
class RetrieverDeployment:
    """Holds the embedding model and the Qdrant client. Embedded Qdrant: exactly one replica."""

    def __init__(self, config: dict) -> None:
        from codesense_ray.app.compose import open_store, query_store
        from codesense_ray.index.embedding import SentenceTransformerEmbedder
        from codesense_ray.retrieval.retriever import Retriever

        from codesense_ray.app.serve.instrumentation import TimedEmbedder

        cfg = _config(config)
        self.embedder = TimedEmbedder(SentenceTransformerEmbedder(cfg.embedding))
        # Not `build_retriever`: the app must start (and answer 503) before the first index exists.
        store = query_store(cfg, open_store(cfg), long_lived=True)
        self.retriever = Retriever(store, self.embedder, cfg.search)

    def search(self, query: str, k: int | None, repo_ids: list[str]) -> Any:
        try:
            return [asdict(h) for h in self.retriever.search(query, k=k, repo_ids=repo_ids)]
        except CodesenseError as err:
            return _as_error(err)

    def search_timed(self, query: str, k: int | None, repo_ids: list[str]) -> Any:
        """`search` plus the seconds spent embedding the query (the ingress exports them as a stage)."""
        with self.embedder.measure() as timings:
            rows = self.search(query, k, repo_ids)
        return rows if isinstance(rows, dict) else {"hits": rows, "timings": timings}

    def index_metadata(self) -> dict:
        """Per repository of the live index: ref, indexed_at, chunks (index freshness gauges)."""
        live = self.retriever.store.live_collection()
        return {} if live is None else self.retriever.store.repo_metas(live)

    def file_line_count(self, repo: str, path: str) -> int | None:
        return self.retriever.file_line_count(repo, path)

    def status(self) -> dict:
        live = self.retriever.store.live_collection()
        if live is None:
            return {"ready": False}
        metas = self.retriever.store.repo_metas(live)
        return {"ready": True, "collection": live, "repos": {r: m.get("ref") for r, m in sorted(metas.items())}}


class GeneratorDeployment:
    """Holds the configured LLM backend (a local model, or a client of vLLM/KServe/Gemini)."""

    def __init__(self, config: dict) -> None:
        from codesense_ray.answering.generators.base import build_generator

        cfg = _config(config)
        self.generator = build_generator(cfg.generator, cfg.home)

    def info(self) -> dict:
        return {"name": self.generator.name, "model": self.generator.model}

    def generate(self, messages: list[dict]) -> Any:
        try:
            return asdict(self.generator.generate(messages))
        except GeneratorError as err:
            return _as_error(err)

    def stream(self, messages: list[dict]) -> Iterator[Any]:
        try:
            yield from self.generator.stream(messages)
        except GeneratorError as err:
            yield _as_error(err)


class _HandleRetriever:
    """The `Retriever` interface over a deployment handle, so `RagAnswerer` runs unchanged in the ingress."""

    def __init__(self, handle, on_timings=None) -> None:
        self.handle = handle
        self.on_timings = on_timings

    def search(self, query: str, k: int | None = None, repo_ids=()):
        from codesense_ray.retrieval.retriever import SearchHit

        result = _raise_remote_error(self.handle.search_timed.remote(query, k, list(repo_ids)).result())
        if self.on_timings:
            self.on_timings(result["timings"])
        return [SearchHit(**r) for r in result["hits"]]

    def file_line_count(self, repo: str, path: str) -> int | None:
        return self.handle.file_line_count.remote(repo, path).result()


class _HandleGenerator:
    """The `Generator` interface over a deployment handle (model info fetched on first use, off the event loop)."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self._info: dict | None = None

    def info(self) -> dict:
        if self._info is None:
            self._info = self.handle.info.remote().result()
        return self._info

    @property
    def name(self) -> str:
        return self.info()["name"]

    @property
    def model(self) -> str:
        return self.info()["model"]

    def generate(self, messages, *, max_tokens=None, temperature=None) -> Generation:
        return Generation(**_raise_remote_error(self.handle.generate.remote(messages).result()))

    def stream(self, messages, *, max_tokens=None, temperature=None) -> Iterator[str]:
        for item in self.handle.options(stream=True).stream.remote(messages):
            yield _raise_remote_error(item)


def _config(config: dict | Config) -> Config:
    if isinstance(config, Config):
        return config
    data = dict(config)
    base = data.pop("__base_dir__", ".")
    from pathlib import Path

    return config_from_dict(data, Path(base), source="serve config")


# --- ingress --------------------------------------------------------------------------------------
HEALTHZ_RETRIEVER_TIMEOUT_S = 5.0
"""/healthz answers "ok" (alive) even when the retriever is busy longer than this with a heavy request."""


async def _awaitable(response):
    return await response


def create_api(
    answerer, retriever_handle, metrics, auth_token: str | None, generator: _HandleGenerator | None, *, max_query_chars: int = 4000
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
            from codesense_ray.retrieval.retriever import SearchHit

            rows = _raise_remote_error(await retriever_handle.search.remote(req.query, req.k, _repo_ids(req.repo)))
            hits = [SearchHit(**r) for r in rows]
        except CodesenseError as err:
            return JSONResponse(_error_payload(err), status_code=error_status(err))
        metrics.stage("retrieve", time.perf_counter() - started)
        return {"query": req.query, "hits": [h.to_dict() for h in hits], "seconds": round(time.perf_counter() - started, 4)}

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


class Metrics:
    """Prometheus metrics of the ingress: requests, per-stage latency, citation validity."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
        self.requests = Counter("codesense_requests_total", "HTTP requests by path and status.", ["path", "status"], registry=self.registry)
        self.latency = Histogram("codesense_request_seconds", "HTTP request latency.", ["path"], buckets=buckets, registry=self.registry)
        self.stages = Histogram("codesense_stage_seconds", "Latency of a RAG stage.", ["stage"], buckets=buckets, registry=self.registry)
        self.validity = Histogram(
            "codesense_citation_validity", "Share of an answer's citations that verified.", buckets=(0.0, 0.25, 0.5, 0.75, 0.99, 1.0), registry=self.registry
        )
        self.invalid = Counter("codesense_citations_removed_total", "Citations removed because they did not verify.", registry=self.registry)

    def observe(self, path: str, status: int, seconds: float) -> None:
        self.requests.labels(path, str(status)).inc()
        self.latency.labels(path).observe(seconds)

    def stage(self, name: str, seconds: float) -> None:
        self.stages.labels(name).observe(seconds)

    def answer(self, answer) -> None:
        self.stage("answer", answer.latency_s)
        if answer.citations.get("citation_valid") is not None:
            self.validity.observe(answer.citations["citation_valid"])
        self.invalid.inc(len(answer.citations.get("invalid", [])))

    def render(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()


class Ingress:
    """FastAPI ingress: builds the answerer around handles to the retriever and generator deployments."""

    def __init__(self, retriever, generator, config: dict, auth_token: str | None = None) -> None:
        from codesense_ray.answering.answerer import RagAnswerer
        from codesense_ray.answering.prompts.registry import build_prompt_registry
        from codesense_ray.answering.tracing import build_tracer

        from codesense_ray.app.serve.instrumentation import ServeMonitor

        cfg = _config(config)
        gen = _HandleGenerator(generator) if generator is not None else None
        if cfg.serve.auth_token_env and not auth_token:
            raise CodesenseError(f"serve.auth_token_env: no token for {cfg.serve.auth_token_env}; refusing to serve without auth")
        metrics = Metrics()
        monitor = ServeMonitor.from_config(cfg, metrics.registry, metrics.stage, lambda: retriever.index_metadata.remote().result())
        self.answerer = monitor.wrap_answerer(RagAnswerer(
            monitor.wrap_retriever(_HandleRetriever(retriever, monitor.on_timings)), monitor.wrap_generator(gen),
            build_prompt_registry(cfg.prompts, cfg.home), build_tracer(cfg.tracing, cfg.home), cfg.answer,
        ))
        self.api = create_api(self.answerer, retriever, metrics, auth_token, gen, max_query_chars=cfg.search.max_query_chars)
        monitor.install_routes(self.api)
        from codesense_ray.app.serve.chat import add_chat_routes

        # OpenAI-compatible /v1/chat/completions and /v1/models: same app, so the same auth, errors and metrics.
        add_chat_routes(self.api, self.answerer, metrics, cfg.chat, error_status, _error_payload)

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Serve calls this on the replica after __init__: the app needs the handles, so it cannot exist earlier.
        return self.api


def _autoscaling(cfg: Config, replicas: int) -> dict:
    s = cfg.serve
    if s.autoscaling:
        return {"autoscaling_config": {"min_replicas": s.min_replicas, "max_replicas": s.max_replicas, "target_ongoing_requests": s.target_ongoing_requests}}
    return {"num_replicas": replicas}


def build_app(cfg: Config):
    """Bind the deployment graph for `cfg`. The only place Serve decorators are applied."""
    config = cfg.model_dump(mode="json") | {"__base_dir__": str(cfg.base_dir)}
    retriever_replicas = cfg.serve.retriever_replicas
    if not cfg.qdrant.url and (retriever_replicas > 1 or cfg.serve.autoscaling):
        raise CodesenseError("serve.retriever_replicas: embedded Qdrant allows one process; set qdrant.url to scale the retriever")
    s = cfg.serve
    retriever = serve.deployment(
        RetrieverDeployment, name="retriever", ray_actor_options={"num_cpus": s.retriever_num_cpus}, **_autoscaling(cfg, retriever_replicas)
    ).bind(config)
    generator = None
    if cfg.generator.backend != "extractive":
        is_local = cfg.generator.backend == "local"
        options = {"num_cpus": s.generator_num_cpus or (1.0 if is_local else 0.25), "num_gpus": s.generator_num_gpus if is_local else 0}
        generator = serve.deployment(GeneratorDeployment, name="generator", ray_actor_options=options, **_autoscaling(cfg, s.generator_replicas)).bind(config)
    token = require_auth_token(s.auth_token_env)  # set but empty/unset: refuse to start, never serve open
    # The ingress only routes and verifies: a small CPU share keeps it schedulable beside the model replicas.
    ingress = serve.deployment(serve.ingress()(Ingress), name="ingress", num_replicas=s.ingress_replicas, ray_actor_options={"num_cpus": 0.25})
    return ingress.bind(retriever, generator, config, token)


def app_builder(args: dict[str, str]):
    """`serve run codesense_ray.app.serve.app:app_builder config=codesense.yaml` (and serve_configs/local.yaml)."""
    from codesense_ray.config import load_config

    return build_app(load_config(args.get("config")))
