"""The Serve deployments: retriever and generator replicas, the handles the ingress uses, and the ingress.

Each deployment receives the configuration (a dict: it crosses process boundaries) and builds its backend
through `app.compose` — the one place configuration becomes objects — so the Serve app and the CLI run the
same objects. Nothing binds here; `app.serve.app.build_app` does.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterator

from fastapi import FastAPI

from codesense_ray.answering.generators.base import Generation
from codesense_ray.app.serve.http import _as_error, _error_payload, _raise_remote_error, create_api, error_status
from codesense_ray.app.serve.metrics import Metrics
from codesense_ray.config import Config, config_from_dict
from codesense_ray.errors import CodesenseError, GeneratorError

class RetrieverDeployment:
    """Holds the embedding model and the Qdrant client. Embedded Qdrant: exactly one replica."""

    def __init__(self, config: dict) -> None:
        from codesense_ray.app.compose import build_serve_retriever
        from codesense_ray.app.serve.instrumentation import TimedEmbedder

        self.retriever = build_serve_retriever(_config(config), wrap_embedder=TimedEmbedder)
        self.embedder = self.retriever.embedder

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
        handle_retriever = monitor.wrap_retriever(_HandleRetriever(retriever, monitor.on_timings))
        self.answerer = monitor.wrap_answerer(build_answerer(cfg, handle_retriever, generator=monitor.wrap_generator(gen)))
        self.api = create_api(self.answerer, retriever, metrics, auth_token, gen, max_query_chars=cfg.search.max_query_chars)
        monitor.install_routes(self.api)
        from codesense_ray.app.serve.chat import add_chat_routes

        # OpenAI-compatible /v1/chat/completions and /v1/models: same app, so the same auth, errors and metrics.
        add_chat_routes(self.api, self.answerer, metrics, cfg.chat, error_status, _error_payload)

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Serve calls this on the replica after __init__: the app needs the handles, so it cannot exist earlier.
        return self.api
