"""Compose the services from configuration: one place that turns `Config` into a retriever or an answerer.

The CLI, the Ray Serve deployments and the evaluation harness all build their objects here, so the same
`codesense.yaml` means the same behaviour everywhere. Heavy imports stay inside the functions.
"""

from __future__ import annotations

from codesense_ray.config import Config
from codesense_ray.errors import IndexNotBuilt
from codesense_ray.store.qdrant import IndexStore, open_client


def open_store(cfg: Config) -> IndexStore:
    return IndexStore(open_client(cfg), cfg.index.collection)


def build_retriever(cfg: Config, store: IndexStore | None = None):
    """A `Retriever` on the live index with the configured embedder loaded in-process (no Ray)."""
    from codesense_ray.index.embedding import SentenceTransformerEmbedder
    from codesense_ray.retrieval.retriever import Retriever

    store = store or open_store(cfg)
    if store.live_collection() is None:
        raise IndexNotBuilt()
    return Retriever(store, SentenceTransformerEmbedder(cfg.embedding), cfg.search)


def build_answerer(cfg: Config, retriever=None, *, generator=None, tracer=None):
    """A `RagAnswerer` with the configured generator, prompt registry and tracer (each overridable)."""
    from codesense_ray.answering.answerer import RagAnswerer
    from codesense_ray.answering.generators.base import build_generator
    from codesense_ray.answering.prompts.registry import build_prompt_registry
    from codesense_ray.answering.tracing import build_tracer

    retriever = retriever or build_retriever(cfg)
    generator = generator if generator is not None else build_generator(cfg.generator, cfg.home)
    tracer = tracer or build_tracer(cfg.tracing, cfg.home)
    return RagAnswerer(retriever, generator, build_prompt_registry(cfg.prompts, cfg.home), tracer, cfg.answer)
