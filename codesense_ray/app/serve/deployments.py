"""The Serve deployments: retriever and generator replicas, the handles the ingress uses, and the ingress.

Each deployment receives the configuration (a dict: it crosses process boundaries) and builds its backend
through `app.compose` — the one place configuration becomes objects — so the Serve app and the CLI run the
same objects. Nothing binds here; `app.serve.app.build_app` does.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from functools import partial
from typing import Any, Iterator

import numpy as np
from fastapi import FastAPI

from codesense_ray.answering.generators.base import Generation
from codesense_ray.app.serve.http import _as_error, _error_payload, _raise_remote_error, create_api, error_status
from codesense_ray.app.serve.metrics import Metrics
from codesense_ray.config import Config, config_from_dict
from codesense_ray.errors import CodesenseError, GeneratorError, IndexNotBuilt

class RetrieverDeployment:
    """Holds the embedding model and the index. Embedded Qdrant: exactly one replica.

    Async, so the replica's event loop only coordinates: the query passages of concurrent requests are embedded
    in one model call (`@serve.batch`, sized by `serve.query_batch_size`), and every CPU-bound step — the model,
    the index search — runs in one worker thread whose torch uses the replica's CPU share. A single kitchen
    line instead of 32 cooks fighting over two stoves: no oversubscribed cores, and `status` (/healthz) and
    line counts answer while searches run.
    """

    def __init__(self, config: dict) -> None:
        from ray import serve

        from codesense_ray.app.compose import build_serve_retriever

        s = _config(config).serve
        self.retriever = build_serve_retriever(_config(config), threads=max(1, round(s.retriever_num_cpus)))
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retriever-cpu")
        self.embed_passages = serve.batch(max_batch_size=s.query_batch_size, batch_wait_timeout_s=s.query_batch_wait_ms / 1000)(self._embed_batch)

    async def _in_worker(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self._worker, partial(fn, *args, **kwargs))

    async def _embed_batch(self, passages: list[list[str]]) -> list[tuple[np.ndarray, int]]:
        """One model call for the passages of every query in the batch; each query gets its own rows back, with
        the number of queries that shared the call."""
        vectors = await self._in_worker(self.retriever.embedder.embed_queries, [p for ps in passages for p in ps])
        bounds = np.cumsum([0] + [len(ps) for ps in passages])
        return [(vectors[a:b], len(passages)) for a, b in zip(bounds[:-1], bounds[1:])]

    async def search(self, query: str, k: int | None, repo_ids: list[str]) -> Any:
        """Hits, the seconds this query waited for its embedding, and the size of the batch it was embedded in
        (the ingress exports both as metrics)."""
        result: dict[str, Any] = {"timings": {}}
        try:
            passages = self.retriever.passages_to_embed(query)
            vectors = None
            if passages:
                started = time.perf_counter()
                vectors, result["batch"] = await self.embed_passages(passages)
                result["timings"]["embed_query"] = time.perf_counter() - started
            hits = await self._in_worker(self.retriever.search, query, k, repo_ids, query_vectors=vectors)
        except CodesenseError as err:
            return _as_error(err)
        return result | {"hits": [asdict(h) for h in hits]}

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


class _HandleRetriever:
    """The `Retriever` interface over a deployment handle, so `RagAnswerer` runs unchanged in the ingress."""

    def __init__(self, handle, on_search=None) -> None:
        self.handle = handle
        self.on_search = on_search

    def search(self, query: str, k: int | None = None, repo_ids=()):
        from codesense_ray.retrieval.retriever import SearchHit

        result = _raise_remote_error(self.handle.search.remote(query, k, list(repo_ids)).result())
        if self.on_search:
            self.on_search(result)
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
    """FastAPI ingress: builds the answerer around handles to the retriever and generator deployments."""

    def __init__(self, retriever, generator, config: dict, auth_token: str | None = None) -> None:
        from codesense_ray.app.compose import build_answerer
        from codesense_ray.app.serve.instrumentation import ServeMonitor

        cfg = _config(config)
        gen = _HandleGenerator(generator) if generator is not None else None
        if cfg.serve.auth_token_env and not auth_token:
            raise CodesenseError(f"serve.auth_token_env: no token for {cfg.serve.auth_token_env}; refusing to serve without auth")
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

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Serve calls this on the replica after __init__: the app needs the handles, so it cannot exist earlier.
        return self.api
