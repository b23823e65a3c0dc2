"""The in-process search engine of the Serve retriever: our in-memory replica (`store.memory.MemoryIndex`, exact
numpy search) against Qdrant Edge (`qdrant-edge-py`: Qdrant's Rust engine in process, HNSW + sparse with IDF).

Loads the live version of an indexed project into both, then answers the same dense (top 50) and sparse (top 50)
queries in both, interleaved query by query. Prints p50/p95 per engine and how many of the exact top-50 ids each
engine returns (Edge's HNSW is approximate). Needs `pip install qdrant-edge-py==0.9.0`.

    .venv/bin/python benchmarks/store_engines.py --project DIR [--queries 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.serve_latency import QUERIES, loadavg, pct  # noqa: E402

LIMIT = 50


def edge_shard(store, collection: str, directory: str):
    """The collection copied into a Qdrant Edge shard (dense cosine + sparse with IDF, like the server's)."""
    from qdrant_edge import Distance, EdgeConfig, EdgeShard, EdgeSparseVectorParams, EdgeVectorParams, Modifier, Point, SparseVector, UpdateOperation

    from codesense_ray.index.schema import DENSE, META_KEY, SPARSE

    dim = store.dimension(collection)
    config = EdgeConfig(vectors={DENSE: EdgeVectorParams(size=dim, distance=Distance.Cosine)}, sparse_vectors={SPARSE: EdgeSparseVectorParams(modifier=Modifier.Idf)})
    shard = EdgeShard.create(directory, config)
    points = []
    for rec in store.scroll(collection, with_vectors=True, payload=True):
        if rec.payload.get(META_KEY):
            continue
        vec = rec.vector or {}
        sparse = vec.get(SPARSE)
        vectors = {DENSE: list(vec[DENSE])}
        if sparse is not None and len(sparse.indices):
            vectors[SPARSE] = SparseVector(list(sparse.indices), list(sparse.values))
        points.append(Point(str(rec.id), vectors, {"repo_id": rec.payload["repo_id"]}))
    for i in range(0, len(points), 512):
        shard.update(UpdateOperation.upsert_points(points[i : i + 512]))
    shard.flush()
    shard.optimize()  # builds the HNSW graph where the segment is large enough
    return shard


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", type=Path, required=True, help="an indexed project directory (codesense.yaml + .codesense)")
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    os.environ["CODESENSE_HOME"] = str(args.project / ".codesense")
    from qdrant_edge import Query, QueryRequest, SparseVector

    from codesense_ray.app.compose import open_store
    from codesense_ray.config import load_config
    from codesense_ray.index.embedding import SentenceTransformerEmbedder
    from codesense_ray.index.lexical import query_sparse_vector
    from codesense_ray.index.schema import DENSE, SPARSE
    from codesense_ray.store.memory import MemoryIndex

    cfg = load_config(args.project / "codesense.yaml")
    store = open_store(cfg)
    live = store.live_collection()
    t0 = time.perf_counter()
    memory = MemoryIndex(store, live)
    load_memory = time.perf_counter() - t0
    t0 = time.perf_counter()
    shard = edge_shard(store, live, tempfile.mkdtemp(prefix="edge-shard-"))
    load_edge = time.perf_counter() - t0
    texts = [f"{QUERIES[i % len(QUERIES)]} (case {i})" for i in range(args.queries)]
    vectors = SentenceTransformerEmbedder(cfg.embedding).embed_queries(texts)
    sparse = [query_sparse_vector(t) for t in texts]

    timings: dict[str, list[float]] = {"memory dense": [], "edge dense": [], "memory sparse": [], "edge sparse": []}
    recall = {"dense": [], "sparse": []}
    for vec, (idx, val) in zip(vectors, sparse):
        t0 = time.perf_counter()
        exact_dense = memory.dense(vec, LIMIT)
        timings["memory dense"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got_dense = [str(p.id) for p in shard.query(QueryRequest(limit=LIMIT, query=Query.Nearest(vec.tolist(), using=DENSE)))]
        timings["edge dense"].append(time.perf_counter() - t0)
        recall["dense"].append(len(set(exact_dense) & set(got_dense)) / max(1, len(exact_dense)))
        if not idx:
            continue
        t0 = time.perf_counter()
        exact_sparse = memory.sparse(idx, val, LIMIT)
        timings["memory sparse"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got_sparse = [str(p.id) for p in shard.query(QueryRequest(limit=LIMIT, query=Query.Nearest(SparseVector(list(idx), list(val)), using=SPARSE)))]
        timings["edge sparse"].append(time.perf_counter() - t0)
        recall["sparse"].append(len(set(exact_sparse) & set(got_sparse)) / max(1, len(exact_sparse)))

    print(f"{len(memory)} chunks; load: memory {load_memory:.1f} s, edge {load_edge:.1f} s (copy + optimize); load average {loadavg()}")
    for name, values in timings.items():
        print(f"{name:<14} p50 {pct(values, 50) * 1000:7.2f} ms  p95 {pct(values, 95) * 1000:7.2f} ms  (n={len(values)})")
    for kind, values in recall.items():
        print(f"edge {kind} top-{LIMIT} overlap with the exact ranking: {np.mean(values):.3f}")
    shard.close()
    store.client.close()


if __name__ == "__main__":
    main()
