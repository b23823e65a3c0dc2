"""The indexing Dataset graph (adapter): the only indexing code that knows Ray.

    files ─► ChunkFiles (CPU actors) ─► EmbedChunks (actor pool, GPU fraction) ─► sparse vectors ─► write

Embedded Qdrant is a single-process store, so there the driver is the single writer; with a Qdrant
server, writer actors upsert in parallel.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Iterator

from codesense_ray.config import Config, resolve_secret
from codesense_ray.index.stages import ChunkFiles, EmbedChunks, WriteToQdrant, add_sparse_vectors, rows_for_store, written_rows
from codesense_ray.offline import apply_offline_defaults
from codesense_ray.store.qdrant import IndexStore

# Files per parse batch: small, so chunking starts streaming into the embedder early.
PARSE_BATCH = 8
# Chunks per embedding batch, in model batches: `encode` sorts each batch by length before padding it, so the
# larger the window the less padding (MiniLM on 4.1k real chunks: 8 model batches per window pad 6.6 % more tokens
# than one global sort, 32 model batches 1.7 %), at the cost of streaming fewer, larger batches to the writer.
EMBED_WINDOW = 32


def init_ray(cfg: Config) -> None:
    """Join the configured cluster, or start a local one (no dashboard, quiet)."""
    apply_offline_defaults()
    import ray

    if ray.is_initialized():
        return
    kwargs: dict = {"ignore_reinit_error": True, "log_to_driver": False, "logging_level": logging.ERROR}
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        kwargs["address"] = address
    else:
        kwargs["include_dashboard"] = False
        if cfg.ray.num_cpus:
            kwargs["num_cpus"] = cfg.ray.num_cpus
    ray.init(**kwargs)


def _uses_gpu(cfg: Config) -> bool:
    return cfg.embedding.device.startswith("cuda") or (cfg.embedding.device == "auto" and _cuda_available())


def _cuda_available() -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def embed_and_write(
    cfg: Config,
    tasks: list[dict],
    store: IndexStore,
    collection: str,
    max_tokens: int,
    on_rows: Callable[[list[dict]], None],
    reuse: dict[str, list[float]] | None = None,
) -> None:
    """Chunk, embed and write `tasks` (one row per file) into `collection`.

    Chunks whose reuse key is in `reuse` keep that stored vector instead of being embedded.
    `on_rows` receives `written_rows` ({"repo_id", "path", "embed_hash", "reused"}) of every written chunk.
    """
    runner = run_in_process if len(tasks) <= cfg.index.in_process_max_files else run_pipeline
    for rows in runner(cfg, tasks, store, collection, max_tokens, reuse or {}):
        on_rows(rows)


# Stage instances kept for the life of the process, so repeated small runs (a watch loop, tests) load the
# model once. Keyed by everything that shapes them.
_LOCAL_STAGES: dict[tuple, tuple[ChunkFiles, EmbedChunks]] = {}


def run_in_process(
    cfg: Config, tasks: list[dict], store: IndexStore, collection: str, max_tokens: int, reuse: dict[str, list[float]] | None = None
) -> Iterator[list[dict]]:
    """The same stages, called directly in this process: for deltas of a few files, starting a Ray cluster
    and its actors costs more than the work (`index.in_process_max_files`)."""
    emb = cfg.embedding
    key = (emb.model_dump_json(), max_tokens, cfg.index.min_chunk_tokens, cfg.secrets.redact)
    if key not in _LOCAL_STAGES:
        _LOCAL_STAGES[key] = (ChunkFiles(emb.model, max_tokens, cfg.index.min_chunk_tokens, cfg.secrets.redact), EmbedChunks(emb))
    chunker, embedder = _LOCAL_STAGES[key]
    embedder.reuse = reuse or {}  # per run; the cached stage keeps only the loaded model
    try:
        for i in range(0, len(tasks), PARSE_BATCH):
            part = tasks[i : i + PARSE_BATCH]
            chunks = chunker({k: [t[k] for t in part] for k in part[0]})
            if not chunks["id"]:
                continue
            batch = add_sparse_vectors(embedder(chunks))
            rows = rows_for_store(batch)
            store.upsert_rows(collection, rows)
            yield written_rows(batch, rows)
    finally:
        embedder.reuse = {}


def run_pipeline(
    cfg: Config, tasks: list[dict], store: IndexStore, collection: str, max_tokens: int, reuse: dict[str, list[float]] | None = None
) -> Iterator[list[dict]]:
    import ray
    import ray.data

    if not tasks:
        return
    init_ray(cfg)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI draws its own bar on stderr
    ctx.print_on_execution_start = False
    for name in ("ray.data", "ray.data._internal.execution.streaming_executor"):
        logging.getLogger(name).setLevel(logging.ERROR)

    gpu = _uses_gpu(cfg)
    emb = cfg.embedding
    cpus = int(ray.cluster_resources().get("CPU", 1))
    blocks = max(1, min(len(tasks) // PARSE_BATCH, 200))
    ds = ray.data.from_items(tasks, override_num_blocks=blocks)
    ds = ds.map_batches(
        ChunkFiles,
        fn_constructor_kwargs={"model": emb.model, "max_tokens": max_tokens, "min_tokens": cfg.index.min_chunk_tokens, "redact_secrets": cfg.secrets.redact},
        batch_size=PARSE_BATCH,
        # Chunking is ~20x cheaper than embedding: more parser processes than half the cores only take CPU from it.
        compute=ray.data.ActorPoolStrategy(size=max(1, min(cfg.index.parse_concurrency, blocks, cpus // 2))),
        num_cpus=0.5,  # light: leaves the cores to the embedder on small CPU machines
    )
    ds = ds.map_batches(
        EmbedChunks,
        fn_constructor_kwargs={"cfg": emb.model_dump(), "threads": None if gpu else max(1, cpus // emb.concurrency), "reuse": reuse or None, "eager": True},
        batch_size=emb.batch_size * EMBED_WINDOW,
        compute=ray.data.ActorPoolStrategy(size=emb.concurrency),
        num_gpus=emb.num_gpus if gpu else 0,
        num_cpus=1 if gpu else 0.5,
    )
    ds = ds.map_batches(add_sparse_vectors, batch_size=emb.batch_size * EMBED_WINDOW, num_cpus=0.25)

    if cfg.qdrant.url:
        ds = ds.map_batches(
            WriteToQdrant,
            fn_constructor_kwargs={
                "url": cfg.qdrant.url,
                "api_key": resolve_secret(cfg.qdrant.api_key_env),
                "collection": collection,
                "timeout_s": cfg.qdrant.timeout_s,
            },
            batch_size=cfg.qdrant.write_batch_size,
            compute=ray.data.ActorPoolStrategy(size=cfg.qdrant.write_concurrency),
            num_cpus=0.25,
        )
        for batch in ds.iter_batches(batch_size=cfg.qdrant.write_batch_size, batch_format="numpy"):
            yield written_rows(batch)
    else:
        for batch in ds.iter_batches(batch_size=cfg.qdrant.write_batch_size, batch_format="numpy"):
            rows = rows_for_store(batch)
            store.upsert_rows(collection, rows)
            yield written_rows(batch, rows)



