"""Building a new index version cheaply keeps blue/green intact: exact copies, durable promotion, stable readers.

Embedded Qdrant (local mode) with the real store, the real chunking and sparse stages, and a deterministic
hash embedder standing in for the model (what is tested is the version layout, not the vectors' meaning).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from codesense_ray.config import load_config
from codesense_ray.index.chunk_reuse import embed_or_reuse
from codesense_ray.index.embedding import ModelInfo
from codesense_ray.index.indexer import Indexer
from codesense_ray.index.schema import DENSE, SPARSE
from codesense_ray.index.stages import ChunkFiles, add_sparse_vectors, rows_for_store, written_rows
from codesense_ray.store.qdrant import IndexStore, embedded_sqlite, open_client
from tests.conftest import ROOT, write_config

DIM = 16
MODULE = 'def handler_{i}(event: dict) -> str:\n    """Handle event number {i} of the billing queue."""\n    return str(event.get("id", {i}))\n'


def hash_vectors(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in for the embedding model: unit vectors seeded by each text's hash."""
    rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).standard_normal(DIM) for t in texts]
    vecs = np.asarray(rows, dtype=np.float32).reshape(len(texts), DIM)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


class HashEmbedAndWrite:
    """The in-process indexing stages with the hash embedder; `during_write` runs after each written batch."""

    def __init__(self, cfg, store: IndexStore) -> None:
        self.chunker = ChunkFiles(cfg.embedding.model, 256, cfg.index.min_chunk_tokens, cfg.secrets.redact)
        self.store = store
        self.during_write = lambda collection: None

    def __call__(self, tasks, collection, on_rows, reuse=None) -> None:
        chunks = self.chunker({k: [t[k] for t in tasks] for k in tasks[0]})
        batch = dict(chunks)
        batch["vector"], batch["embed_hash"], batch["reused"] = embed_or_reuse([str(t) for t in chunks["embed_text"]], reuse or {}, hash_vectors)
        batch = add_sparse_vectors(batch)
        rows = rows_for_store(batch)
        self.store.upsert_rows(collection, rows)
        self.during_write(collection)
        on_rows(written_rows(batch, rows))


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / ".codesense"))
    for repo in ("billing", "auth"):
        for i in range(6):
            path = tmp_path / repo / f"module_{i}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(MODULE.format(i=i) + f"\n\ndef {repo}_only_{i}():\n    return {i}\n")
    write_config(tmp_path, [{"id": "billing", "path": "billing"}, {"id": "auth", "path": "auth"}], index={"retention": 1})
    return tmp_path


def open_indexer(project: Path) -> tuple[IndexStore, Indexer, HashEmbedAndWrite]:
    cfg = load_config(project / "codesense.yaml")
    store = IndexStore(open_client(cfg), cfg.index.collection, embedded=True)
    writer = HashEmbedAndWrite(cfg, store)
    return store, Indexer(cfg, store, ModelInfo("hash", "", DIM, 256), writer), writer


def points(client: QdrantClient, collection: str) -> dict[str, tuple]:
    """id → (dense vector, sparse indices, sparse values, payload) of every point of `collection`."""
    out = {}
    offset = None
    while True:
        recs, offset = client.scroll(collection, limit=256, offset=offset, with_payload=True, with_vectors=True)
        for r in recs:
            vec = r.vector or {}
            sparse = vec.get(SPARSE)
            dense = vec.get(DENSE)
            out[str(r.id)] = (
                None if dense is None else np.round(np.asarray(dense, dtype=np.float32), 6).tolist(),
                None if sparse is None else list(sparse.indices),
                None if sparse is None else np.round(sparse.values, 6).tolist(),
                r.payload,
            )
        if offset is None:
            return out


def test_carried_version_equals_a_plain_client_copy(project):
    """A version built by an edit run (unchanged files carried, one file re-chunked) holds exactly the points a
    plain qdrant-client copy of the carried points plus the new ones would: ids, dense and sparse vectors, payloads —
    also after the client is closed and the storage reopened from disk."""
    store, indexer, _ = open_indexer(project)
    first = indexer.run()
    before = points(store.client, first.collection)
    (project / "billing" / "module_0.py").write_text(MODULE.format(i=0) + "\n\ndef appended_in_edit():\n    return 'new'\n")
    second = indexer.run()
    after = points(store.client, second.collection)
    # The old path, by hand: every point of the unchanged files read with its vectors and upserted one batch at a time.
    store.client.create_collection(
        "plain", vectors_config={DENSE: models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )  # fmt: skip
    changed = {pid for pid, p in after.items() if p[3].get("path") == "module_0.py" and p[3].get("repo_id") == "billing"}
    carried = [pid for pid in before if pid in after and pid not in changed and not before[pid][3].get("_meta")]
    recs = store.client.retrieve(first.collection, ids=carried, with_payload=True, with_vectors=True)
    store.client.upsert("plain", [models.PointStruct(id=r.id, vector=r.vector, payload=r.payload) for r in recs])
    plain = points(store.client, "plain")
    assert second.totals()["chunks_reused"] == len(carried) + len(changed) - second.totals()["chunks_embedded"]
    assert {pid: p for pid, p in after.items() if pid in plain} == plain
    assert embedded_sqlite(store.client, second.collection).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.client.close()
    reopened, _, _ = open_indexer(project)
    try:
        assert points(reopened.client, second.collection) == after
        assert reopened.live_collection() == second.collection and reopened.is_complete(second.collection)
    finally:
        reopened.client.close()


def test_readers_keep_the_old_view_until_the_alias_moves(project):
    """While a run fills the next version, queries on the alias answer from the previous version, unchanged; after
    the swap they answer from the new one."""
    store, indexer, writer = open_indexer(project)
    indexer.run()
    probe = hash_vectors(["Handle event number 3 of the billing queue."])
    old_hits = store.dense_search(probe, 5)
    old_payloads = store.payloads(old_hits[0])
    seen: list[tuple] = []
    writer.during_write = lambda collection: seen.append((store.live_collection(), store.dense_search(probe, 5), store.payloads(old_hits[0])))
    for i in range(6):
        (project / "billing" / f"module_{i}.py").write_text(f"def rewritten_{i}():\n    return {i}\n")
    second = indexer.run()
    try:
        assert seen and all(s == (seen[0][0], old_hits, old_payloads) for s in seen)
        assert seen[0][0] != second.collection and store.live_collection() == second.collection
        assert store.dense_search(probe, 5) != old_hits
    finally:
        store.client.close()


KILLED_AFTER_PROMOTION = """
import os, sys
from pathlib import Path
from tests.cpu.integration.test_index_versions import open_indexer
store, indexer, writer = open_indexer(Path(sys.argv[1]))
summary = indexer.run(full=True)
print(summary.collection, flush=True)
(Path(sys.argv[1]) / "auth" / "module_1.py").write_text("def half_written():\\n    return 0\\n")
writer.during_write = lambda collection: os._exit(9)  # dies with the next version half built, nothing closed
indexer.run()
"""


@pytest.mark.slow
def test_kill_after_promotion_keeps_the_promoted_version(project):
    """kill -9 right after a promotion and in the middle of the next run (no close, no cleanup): the promoted
    version reopens complete with every point, the half-built one is partial and removed by the next run."""
    store, indexer, _ = open_indexer(project)
    expected = store.count(indexer.run().collection)
    store.client.close()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", KILLED_AFTER_PROMOTION, str(project)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]
    promoted = proc.stdout.split()[0]
    store, indexer, _ = open_indexer(project)
    try:
        assert store.live_collection() == promoted and store.is_complete(promoted)
        assert store.count(promoted) == expected
        partial = [v for v in store.versions() if not store.is_complete(v)]
        assert len(partial) == 1
        assert indexer.run().partial_versions_removed == partial
    finally:
        store.client.close()
