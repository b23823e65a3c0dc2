"""The Serve deployments: retriever and generator replicas, the handles the ingress uses, and the ingress.

Each deployment receives the configuration (a dict: it crosses process boundaries) and builds its backend
through `app.compose` — the one place configuration becomes objects — so the Serve app and the CLI run the
same objects. Nothing binds here; `app.serve.app.build_app` does.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict
from typing import Any, Callable, Iterator

from fastapi import FastAPI

from codesense_ray.answering.generators.base import Generation
from codesense_ray.app.serve.batching import ContinuousBatcher, RecentPeak
from codesense_ray.app.serve.http import _as_error, _error_payload, _raise_remote_error, create_api, error_status
from codesense_ray.app.serve.metrics import Metrics
from codesense_ray.config import Config, config_from_dict
from codesense_ray.errors import CodesenseError, GeneratorError, IndexNotBuilt


class RetrieverDeployment:
    """Holds the embedding model and the index. Embedded Qdrant: exactly one replica (or hosted in the ingress).

    Async, so the replica's event loop only coordinates: concurrent searches are served in batches
    (`ContinuousBatcher`, at most `serve.query_batch_size`) — one model call embeds every query's passages, one
    matrix product answers their dense searches, then each query is fused and ranked — in one worker thread whose
    torch uses the replica's CPU share. A single kitchen line instead of 32 cooks fighting over two stoves: no
    oversubscribed cores, and `status` (/healthz) and line counts answer while searches run.

    The whole search is the batched unit, not only the embedding, and a batch is formed when the worker frees
    up: what queued while the last batch ran goes in together. (Batching only the embedding let each request's
    batch close after `query_batch_wait_ms` and wait behind the searches in the worker's queue: batches of ~1.1
    under load. `@serve.batch` closes batches on its timer while the worker is busy: lopsided batches.)
    """

    def __init__(self, config: dict) -> None:
        from codesense_ray.app.compose import build_serve_retriever

        s = _config(config).serve
        self.retriever = build_serve_retriever(_config(config), threads=max(1, round(s.retriever_num_cpus)))
        self._wait_s = s.query_batch_wait_ms / 1000
        self._max_batch = s.query_batch_size
        self.batcher = ContinuousBatcher(self.search_many, max_batch_size=s.query_batch_size, thread_name="retriever-cpu")
        self._concurrency = RecentPeak()
        self._searching = 0
        self.load_hint: Callable[[], int] = lambda: 0
        """Requests in flight in this replica beyond its searches (the colocated ingress counts its HTTP requests)."""

    async def search(self, query: str, k: int | None, repo_ids: list[str]) -> Any:
        """Hits, the seconds this query's batch spent embedding, and the size of the batch it was served in
        (the ingress exports both as metrics); a domain error as data.

        A lone request never waits for company: the batch window (`serve.query_batch_wait_ms`) opens only while
        other requests are in flight, so one developer's query costs no wait and a crowd gets big batches. A batch
        holds at most half the recent concurrency: two groups take turns, one in the model while the other's
        answers and next questions cross HTTP (double buffering), so the model never idles between batches."""
        self._searching += 1
        try:
            busy = max(self._searching, self.load_hint())
            self._concurrency.observe(busy)
            self.batcher.configure(
                max_batch_size=min(self._max_batch, math.ceil(self._concurrency.current() / 2)),
                wait_s=self._wait_s if busy > 1 else 0.0,
            )
            return await self.batcher.submit((query, k, tuple(repo_ids)))
        finally:
            self._searching -= 1

    def search_many(self, requests: list[tuple[str, int | None, tuple[str, ...]]]) -> list[Any]:
        """One model call for the passages of every query and one dense search per repository filter
        (`Retriever.search_batch`); each query gets its own hits, or its own domain error as data."""
        timings: dict[str, float] = {}
        results = self.retriever.search_batch(requests, timings)
        out: list[Any] = []
        for result in results:
            if isinstance(result, CodesenseError):
                out.append(_as_error(result))
            else:
                out.append({"timings": timings, "batch": len(requests), "hits": result})  # `SearchHit`s: they pickle
        return out

    def index_metadata(self) -> dict:
        """Per repository of the live index: ref, indexed_at, chunks (index freshness gauges)."""
        try:
            return self.retriever.repositories()
        except IndexNotBuilt:
            return {}

    def file_line_count(self, repo: str, path: str) -> int | None:
        return self.retriever.file_line_count(repo, path)

    def status(self) -> dict:
        # Read from the retriever's per-version cache: /healthz never scans the index.
        try:
            live, metas = self.retriever.live(), self.retriever.repositories()
        except IndexNotBuilt:
            return {"ready": False}
        return {"ready": True, "collection": live, "repos": {r: m.get("ref") for r, m in sorted(metas.items())}}


GENERATION_ITEM = "__generation__"


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
        """Text deltas, then `{"__generation__": ...}`: the stream's return value (token usage) as the last item,
        since a generator's return value does not cross the deployment handle."""
        try:
            gen = yield from self.generator.stream(messages)
        except GeneratorError as err:
            yield _as_error(err)
            return
        if gen is not None:
            yield {GENERATION_ITEM: asdict(gen)}


class _LocalResponse:
    """What a deployment handle's `.remote()` returns, for a method of an object in this process: awaitable on the
    replica's event loop, `.result()` from a request thread (an async method then runs on that loop, where its
    batch queue lives)."""

    def __init__(self, owner: "LocalDeployment", fn, args: tuple, kwargs: dict) -> None:
        self.owner, self.fn, self.args, self.kwargs = owner, fn, args, kwargs

    def __await__(self):
        if asyncio.iscoroutinefunction(self.fn):
            return self.fn(*self.args, **self.kwargs).__await__()
        return _ready(self.fn(*self.args, **self.kwargs)).__await__()

    def result(self, timeout_s: float | None = None) -> Any:
        if not asyncio.iscoroutinefunction(self.fn):
            return self.fn(*self.args, **self.kwargs)
        loop = self.owner.loop
        if loop is None:  # no request has reached the loop yet (nothing in Serve calls this before one does)
            return asyncio.run(self.fn(*self.args, **self.kwargs))
        return asyncio.run_coroutine_threadsafe(self.fn(*self.args, **self.kwargs), loop).result(timeout_s)


async def _ready(value: Any) -> Any:
    return value


class _LocalMethod:
    def __init__(self, owner: "LocalDeployment", fn) -> None:
        self.owner, self.fn = owner, fn

    def remote(self, *args, **kwargs) -> _LocalResponse:
        return _LocalResponse(self.owner, self.fn, args, kwargs)


class LocalDeployment:
    """A deployment class hosted inside the ingress replica, behind the handle interface (`h.method.remote(...)`),
    so the routes and the answerer run unchanged whether the retriever is its own deployment or colocated.
    `loop` is the replica's request loop and `inflight` its HTTP requests in flight (both kept by `BindLoop`)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.loop: asyncio.AbstractEventLoop | None = None
        self.inflight = 0

    def __getattr__(self, name: str) -> _LocalMethod:
        return _LocalMethod(self, getattr(self.target, name))


class BindLoop:
    """ASGI middleware: tells a `LocalDeployment` which event loop serves requests (Serve runs user code on its
    own loop, in its own thread; sync routes run in threads that hand async calls back to it)."""

    def __init__(self, app, local: LocalDeployment) -> None:
        self.app, self.local = app, local

    async def __call__(self, scope, receive, send) -> None:
        self.local.loop = asyncio.get_running_loop()
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # In flight until the response starts (the client may send its next request before this call returns).
        self.local.inflight += 1
        answered = False

        async def send_counting(message) -> None:
            nonlocal answered
            if not answered and message["type"] == "http.response.start":
                answered = True
                self.local.inflight -= 1
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            if not answered:
                self.local.inflight -= 1


class _HandleRetriever:
    """The `Retriever` interface over a deployment handle, so `RagAnswerer` runs unchanged in the ingress."""

    def __init__(self, handle, on_search=None) -> None:
        self.handle = handle
        self.on_search = on_search

    def search(self, query: str, k: int | None = None, repo_ids=()):
        result = _raise_remote_error(self.handle.search.remote(query, k, list(repo_ids)).result())
        if self.on_search:
            self.on_search(result)
        return list(result["hits"])

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

    def stream(self, messages, *, max_tokens=None, temperature=None):
        """Yields the deltas; returns the `Generation` (token usage) the deployment sends last, like a local stream."""
        for item in self.handle.options(stream=True).stream.remote(messages):
            item = _raise_remote_error(item)
            if isinstance(item, dict) and GENERATION_ITEM in item:
                return Generation(**item[GENERATION_ITEM])
            yield item
        return None


def _config(config: dict | Config) -> Config:
    if isinstance(config, Config):
        return config
    data = dict(config)
    base = data.pop("__base_dir__", ".")
    from pathlib import Path

    return config_from_dict(data, Path(base), source="serve config")


class Ingress:
    """FastAPI ingress: builds the answerer around handles to the retriever and generator deployments (`retriever`
    None: the retriever is built here, behind a `LocalDeployment`)."""

    def __init__(self, retriever, generator, config: dict, auth_token: str | None = None) -> None:
        from codesense_ray.app.compose import build_answerer
        from codesense_ray.app.serve.instrumentation import ServeMonitor

        cfg = _config(config)
        gen = _HandleGenerator(generator) if generator is not None else None
        if cfg.serve.auth_token_env and not auth_token:
            raise CodesenseError(f"serve.auth_token_env: no token for {cfg.serve.auth_token_env}; refusing to serve without auth")
        local = None
        if retriever is None:  # serve.colocate_retriever: the model and the index live in this replica
            retriever = local = LocalDeployment(RetrieverDeployment(config))
            local.target.load_hint = lambda: local.inflight
        metrics = Metrics()
        monitor = ServeMonitor.from_config(cfg, metrics.registry, metrics.stage, lambda: retriever.index_metadata.remote().result())
        # The same composition as the CLI's, with the retriever and generator behind deployment handles.
        def on_search(result: dict) -> None:
            monitor.on_timings(result["timings"])
            metrics.query_batch(result.get("batch"))

        handle_retriever = monitor.wrap_retriever(_HandleRetriever(retriever, on_search))
        self.answerer = monitor.wrap_answerer(build_answerer(cfg, handle_retriever, generator=monitor.wrap_generator(gen)))
        self.api = create_api(self.answerer, retriever, metrics, auth_token, gen, max_query_chars=cfg.search.max_query_chars)
        monitor.install_routes(self.api)
        from codesense_ray.app.serve.chat import add_chat_routes

        # OpenAI-compatible /v1/chat/completions and /v1/models: same app, so the same auth, errors and metrics.
        add_chat_routes(self.api, self.answerer, metrics, cfg.chat, error_status, _error_payload)
        if local is not None:
            self.api.add_middleware(BindLoop, local=local)

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Serve calls this on the replica after __init__: the app needs the handles, so it cannot exist earlier.
        return self.api
