"""Compose the services from configuration: one place that turns `Config` into a retriever or an answerer.

The CLI, the Ray Serve deployments and the evaluation harness all build their objects here, so the same
`codesense.yaml` means the same behaviour everywhere. Heavy imports stay inside the functions.
"""

from __future__ import annotations

from codesense_ray.config import Config
from codesense_ray.errors import IndexNotBuilt
from codesense_ray.store.base import VectorStore
from codesense_ray.store.qdrant import IndexStore, open_client


def open_store(cfg: Config) -> IndexStore:
    """The Qdrant the config names: a server when `qdrant.url` is set, else embedded local mode."""
    return IndexStore(open_client(cfg), cfg.index.collection, embedded=not cfg.qdrant.url)


def query_store(cfg: Config, store: VectorStore, *, long_lived: bool) -> VectorStore:
    """The store queries should read: for a long-lived process on embedded Qdrant (and `search.memory_index`),
    an in-memory read replica of the live version; otherwise `store` itself.

    Embedded Qdrant scans every point in Python per query; a process that answers many queries loads the live
    version once instead. A one-shot `codesense search` is not long-lived and never pays for that load.
    """
    if long_lived and store.embedded and cfg.search.memory_index:
        from codesense_ray.store.memory import MemoryReplica

        return MemoryReplica(store)
    return store


def build_indexer(cfg: Config, store: IndexStore):
    """An `Indexer` whose heavy step is the Ray Data pipeline (chunk bound = min(config, the model's limit))."""
    from codesense_ray.index.embedding import read_model_info
    from codesense_ray.index.indexer import Indexer
    from codesense_ray.index.pipeline import embed_and_write

    info = read_model_info(cfg.embedding.model, cfg.embedding.max_seq_length)
    max_tokens = min(cfg.index.max_chunk_tokens, info.max_seq_length)

    def run(tasks: list[dict], collection: str, on_rows, reuse: dict[str, list[float]] | None = None) -> None:
        embed_and_write(cfg, tasks, store, collection, max_tokens, on_rows, reuse)

    return Indexer(cfg, store, info, run)


def build_index_gate(cfg: Config, store: IndexStore, gates_path: str, dataset_path: str | None = None):
    """The quality gate `codesense index --gate` applies to a candidate version before the alias moves to it.

    Retrieval is evaluated on the candidate collection itself (pinned, not the alias) with the dataset
    `dataset_path` or `evaluation.dataset`; the rules come from `gates_path`. Both files are read now, so a bad
    gate or dataset fails before anything is embedded.
    """
    from pathlib import Path

    from codesense_ray.config.evaluation import evaluation_config
    from codesense_ray.errors import InvalidConfig
    from codesense_ray.evaluation.dataset import load_dataset
    from codesense_ray.evaluation.gate import GateVerdict, check_gates, load_gates
    from codesense_ray.evaluation.runner import EvalRunner
    from codesense_ray.index.embedding import SentenceTransformerEmbedder
    from codesense_ray.retrieval.retriever import Retriever

    ecfg = evaluation_config(cfg)
    dataset_path = dataset_path or (str(Path(cfg.base_dir) / ecfg.dataset) if ecfg.dataset else None)
    if not dataset_path:
        raise InvalidConfig("evaluation.dataset: `--gate` needs an evaluation set (set evaluation.dataset or pass --dataset FILE)")
    rules = load_gates(gates_path)
    dataset = load_dataset(dataset_path)

    def gate(collection: str) -> GateVerdict:
        pinned = query_store(cfg, store.pinned(collection), long_lived=True)
        retriever = Retriever(pinned, SentenceTransformerEmbedder(cfg.embedding, for_queries=True), cfg.search)
        report = EvalRunner(retriever, ks=ecfg.ks, depth=ecfg.depth, candidates=cfg.search.candidates).run(dataset)
        return GateVerdict(dataset_path, report.metrics, check_gates(report.metrics, rules))

    return gate


def build_retriever(cfg: Config, store: VectorStore | None = None, *, long_lived: bool = False):
    """A `Retriever` on the live index with the configured embedder loaded in-process (no Ray).

    `long_lived`: the caller will ask many queries (Serve, evaluation, benchmarks) — see `query_store`.
    """
    from codesense_ray.retrieval.retriever import Retriever

    store = store or open_store(cfg)
    if store.live_collection() is None:
        raise IndexNotBuilt()
    return Retriever(query_store(cfg, store, long_lived=long_lived), query_embedder(cfg, long_lived=long_lived), cfg.search)


#: `build_answerer(generator=CONFIGURED)`: build the generator `generator.backend` names (None is a valid
#: generator: the extractive answer, so it cannot mean "not given").
CONFIGURED = object()


def build_serve_retriever(cfg: Config, threads: int = 1):
    """The Serve retriever replica's `Retriever`: long-lived (in-memory replica on embedded Qdrant, query cache),
    torch limited to `threads`, and unlike `build_retriever` it does not require an index yet — the app starts,
    and answers 503 until one exists."""
    from codesense_ray.retrieval.retriever import Retriever

    return Retriever(query_store(cfg, open_store(cfg), long_lived=True), query_embedder(cfg, long_lived=True, threads=threads), cfg.search)


def query_embedder(cfg: Config, *, long_lived: bool, threads: int = 1):
    """The configured embedding model for queries; a long-lived process puts the LRU query cache
    (`search.query_cache_size`) in front of it.

    One torch thread by default: a query is a few dozen tokens, and intra-op threads only wait for each other
    on a busy host (measured on the 2-core CI machine at load 7: 80 ms per search with 1 thread, 1.1 s with 2).
    """
    from codesense_ray.index.embedding import QueryEmbeddingCache, SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(cfg.embedding, threads=threads, for_queries=True)
    size = cfg.search.query_cache_size
    return QueryEmbeddingCache(embedder, size) if long_lived and size else embedder


def build_answerer(cfg: Config, retriever=None, *, generator=CONFIGURED, tracer=None):
    """A `RagAnswerer` with the configured generator, prompt registry and tracer (each overridable).

    The CLI passes nothing (everything in-process); the Serve ingress passes handles to the retriever and
    generator deployments, so both build the same answerer from the same `codesense.yaml`.
    """
    from codesense_ray.answering.answerer import RagAnswerer
    from codesense_ray.answering.generators.base import build_generator
    from codesense_ray.answering.prompts.registry import build_prompt_registry
    from codesense_ray.answering.tracing import build_tracer

    retriever = retriever or build_retriever(cfg)
    generator = build_generator(cfg.generator, cfg.home) if generator is CONFIGURED else generator
    tracer = tracer or build_tracer(cfg.tracing, cfg.home)
    return RagAnswerer(retriever, generator, build_prompt_registry(cfg.prompts, cfg.home), tracer, cfg.answer)
