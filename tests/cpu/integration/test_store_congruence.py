"""One congruence suite for every `VectorStore` implementation available here.

The same index (the sample payments service, indexed by the real indexer in-process) is read through each
implementation, and every query of the interface — and the retriever on top — must answer like the reference,
embedded Qdrant. Implementations: embedded Qdrant (`IndexStore`, local mode), the in-memory read replica
(`MemoryReplica`), and a Qdrant server when `CODESENSE_TEST_QDRANT_URL` names one (skipped with that reason
otherwise: no server can run on the CI machine).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from qdrant_client import QdrantClient

from codesense_ray.app.compose import build_indexer, open_store
from codesense_ray.config import load_config
from codesense_ray.index.embedding import SentenceTransformerEmbedder
from codesense_ray.index.lexical import query_sparse_vector
from codesense_ray.retrieval.retriever import Retriever
from codesense_ray.store.base import VectorStore
from codesense_ray.store.memory import MemoryReplica
from codesense_ray.store.qdrant import IndexStore
from tests.conftest import PAYMENTS, write_config

QUERIES = [
    "How are JWT bearer tokens verified?",
    "`verify_bearer_token` raises TokenError",
    'File "/srv/app/auth/permissions.py", line 3, in require_scope',
    "terraform KMS key for the signing secret",
]
SERVER_URL = os.environ.get("CODESENSE_TEST_QDRANT_URL")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """The payments service indexed once into embedded Qdrant (in-process stages, no Ray)."""
    root = tmp_path_factory.mktemp("congruence")
    shutil.copytree(PAYMENTS, root / "payments")
    os.environ["CODESENSE_HOME"] = str(root / ".codesense")
    write_config(root, [{"id": "payments", "path": "payments", "web_url": "https://gitlab.example.com/team/payments", "ref": "main"}],
                 index={"in_process_max_files": 10_000})
    cfg = load_config(root / "codesense.yaml")
    store = open_store(cfg)
    build_indexer(cfg, store).run()
    embedder = SentenceTransformerEmbedder(cfg.embedding)
    yield cfg, store, embedder
    store.client.close()


def _server_copy(cfg, reference: IndexStore) -> IndexStore:
    """The reference version copied point for point into a Qdrant server, behind the same alias."""
    server = IndexStore(QdrantClient(url=SERVER_URL, timeout=30), f"congruence{os.getpid()}", embedded=False)
    live = reference.live_collection()
    name = server.create_version(reference.dimension(live))
    for rec_batch in _batches(list(reference.scroll(live, with_vectors=True)), 256):
        from qdrant_client import models

        server.client.upsert(name, points=[models.PointStruct(id=r.id, vector=r.vector or {}, payload=r.payload) for r in rec_batch], wait=True)
    server.swap_alias(name)
    return server


def _batches(items, n):
    for i in range(0, len(items), n):
        yield items[i : i + n]


@pytest.fixture(params=["replica", "server"])
def other(request, indexed) -> VectorStore:
    cfg, store, _ = indexed
    if request.param == "replica":
        yield MemoryReplica(store)
        return
    if not SERVER_URL:
        pytest.skip("no Qdrant server: set CODESENSE_TEST_QDRANT_URL=http://host:6333 to run the server flavour")
    server = _server_copy(cfg, store)
    yield server
    for v in server.versions():
        server.client.delete_collection(v)


def test_every_implementation_satisfies_the_interface(indexed, other):
    """Both the reference and the other implementation are `VectorStore`s (runtime protocol check)."""
    _, store, _ = indexed
    assert isinstance(store, VectorStore) and isinstance(other, VectorStore)


def test_versions_manifest_and_counts_agree(indexed, other):
    """Live version's manifest, repository metadata and chunk counts are the same through every implementation."""
    _, store, _ = indexed
    ref_live, live = store.live_collection(), other.live_collection()
    assert ref_live and live
    ref_manifest, manifest = store.manifests(ref_live)["payments"], other.manifests(live)["payments"]
    assert {p: (e.file_hash, sorted(e.chunk_ids)) for p, e in ref_manifest.items()} == {p: (e.file_hash, sorted(e.chunk_ids)) for p, e in manifest.items()}
    assert store.count_chunks(ref_live) == other.count_chunks(live) > 20
    assert store.repo_metas(ref_live)["payments"]["ref"] == other.repo_metas(live)["payments"]["ref"]


def test_queries_agree(indexed, other):
    """dense, sparse and keyword queries, payloads and line counts answer like embedded Qdrant."""
    _, store, embedder = indexed
    for q in QUERIES:
        vecs = embedder.embed_queries([q])
        assert store.dense_search(vecs, 10, ["payments"]) == other.dense_search(vecs, 10, ["payments"]), q
        idx, val = query_sparse_vector(q)
        assert store.sparse_search(idx, val, 10, ["payments"]) == other.sparse_search(idx, val, 10, ["payments"]), q
    names = ["verify_bearer_token", "require_scope", "authorize"]
    ref = store.keyword_matches("def_names", names, ["payments"], ["def_names", "symbol"], 256)
    got = other.keyword_matches("def_names", names, ["payments"], ["def_names", "symbol"], 256)
    assert ref and sorted(ref, key=lambda x: x[0]) == sorted(got, key=lambda x: x[0])
    ids = [pid for pid, _ in ref[:5]]
    assert store.payloads(ids) == other.payloads(ids)
    assert store.line_count("payments", "app/auth/jwt.py") == other.line_count("payments", "app/auth/jwt.py") > 50
    assert store.line_count("payments", "no/such/file.py") is None and other.line_count("payments", "no/such/file.py") is None
    assert store.dense_search(embedder.embed_queries(["x"]), 5, ["no-such-repo"]) == [[]] == other.dense_search(embedder.embed_queries(["x"]), 5, ["no-such-repo"])
    several = embedder.embed_queries(QUERIES)  # one batched call (the replica: one matrix product) = each alone
    assert other.dense_search(several, 10, []) == store.dense_search(several, 10, []) == [store.dense_search(v[None], 10, [])[0] for v in several]


def test_retriever_ranks_every_signal_the_same(indexed, other):
    """The retriever on top ranks each signal's top 10 and the fused hits identically on every implementation."""
    cfg, store, embedder = indexed
    ref, got = Retriever(store, embedder, cfg.search), Retriever(other, embedder, cfg.search)
    for q in QUERIES:
        a, b = ref.rank_signals(q, ["payments"]), got.rank_signals(q, ["payments"])
        assert set(a) == set(b), q
        for signal in a:
            assert a[signal][:10] == b[signal][:10], (q, signal)
        assert [(h.path, h.start_line, h.url) for h in ref.search(q, k=5)] == [(h.path, h.start_line, h.url) for h in got.search(q, k=5)]


def test_search_batch_answers_each_query_like_search(indexed, other):
    """`Retriever.search_batch` (the Serve retriever's batch: one model call, one dense search per repository
    filter) returns each query exactly what `search` returns alone, and a bad repository fails only its query."""
    from codesense_ray.errors import RepositoryNotFound

    cfg, _, embedder = indexed
    retriever = Retriever(other, embedder, cfg.search)
    requests = [(q, 5, ["payments"] if i % 2 else []) for i, q in enumerate(QUERIES)] + [("refund", 5, ["nope"])]
    timings: dict = {}
    results = retriever.search_batch(requests, timings)
    assert isinstance(results[-1], RepositoryNotFound) and timings["embed_query"] > 0
    for (q, k, repos), hits in zip(requests, results):
        if repos != ["nope"]:
            assert [(h.path, h.start_line, h.signals) for h in hits] == [(h.path, h.start_line, h.signals) for h in retriever.search(q, k, repos)], q


def test_replica_follows_the_alias(indexed, tmp_path):
    """After the alias moves to a new version, the replica answers from the new version, not its old copy."""
    cfg, store, embedder = indexed
    replica = MemoryReplica(store)
    before = replica.snapshot()
    assert before is not None and before.collection == store.live_collection()
    old_live = store.live_collection()
    new = store.create_version(store.dimension(old_live))
    store.copy_points(old_live, new)
    store.swap_alias(new)
    try:
        after = replica.snapshot()
        assert after.collection == new and after is not before
    finally:
        store.swap_alias(old_live)
        store.client.delete_collection(new)


def test_bfloat16_query_encoder_ranks_like_float32(indexed):
    """`embedding.query_dtype: bfloat16` (the default on CPUs with native bfloat16): unit-length float32 vectors
    within cosine 0.999 of the float32 encoder's, the same top 5 for every query, and documents untouched (a
    query embedder is the only thing that changes precision)."""
    from codesense_ray.index.embedding import SentenceTransformerEmbedder

    cfg, store, embedder = indexed
    bf16 = SentenceTransformerEmbedder(cfg.embedding.model_copy(update={"query_dtype": "bfloat16"}), for_queries=True)
    assert bf16.dtype == "bfloat16" and embedder.dtype == "float32"
    full, low = embedder.embed_queries(QUERIES), bf16.embed_queries(QUERIES)
    assert low.dtype == np.float32 and np.allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-5)
    assert ((full * low).sum(axis=1) > 0.999).all() and not np.array_equal(full, low)
    ref, got = Retriever(store, embedder, cfg.search), Retriever(store, bf16, cfg.search)
    for q in QUERIES:
        assert [(h.path, h.start_line) for h in ref.search(q, k=5)] == [(h.path, h.start_line) for h in got.search(q, k=5)], q
    float32 = SentenceTransformerEmbedder(cfg.embedding.model_copy(update={"query_dtype": "float32"}), for_queries=True)
    assert np.array_equal(float32.embed_queries(QUERIES), full)  # an explicit float32 is exactly the index's encoder
