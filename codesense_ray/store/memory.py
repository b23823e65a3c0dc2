"""An in-memory copy of the live collection for fast exact search in embedded mode.

Embedded Qdrant answers every query by scanning all points in Python (sparse scoring, payload filters),
which costs hundreds of milliseconds at ten thousand chunks. A long-lived process (the Serve retriever, an
evaluation run) loads the live version once — dense matrix, sparse postings, definition and path lookups —
and answers from memory, like a read replica warmed from the primary. It is rebuilt when the alias moves.
Scores follow Qdrant's own: cosine for dense, Σ idf·w_q·w_d with BM25's idf for the sparse vector.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np

from codesense_ray.index.schema import DENSE, META_KEY, SPARSE
from codesense_ray.store.base import FileEntry, VectorStore


class MemoryIndex:
    """Exact dense / sparse / keyword search over one collection version held in memory."""

    def __init__(self, store: VectorStore, collection: str) -> None:
        self.collection = collection
        ids: list[str] = []
        repos: list[str] = []
        vectors: list[list[float]] = []
        postings: dict[int, list[tuple[int, float]]] = defaultdict(list)
        self.keywords: dict[str, dict[str, list[int]]] = {"def_names": defaultdict(list), "path_tails": defaultdict(list)}
        self.payloads: list[dict] = []
        self.line_counts: dict[tuple[str, str], int] = {}
        for rec in store.scroll(collection, with_vectors=True, payload=True):
            if rec.payload.get(META_KEY):
                continue
            i = len(ids)
            ids.append(str(rec.id))
            repos.append(rec.payload["repo_id"])
            key = (rec.payload["repo_id"], rec.payload["path"])
            lines = rec.payload.get("line_count") or rec.payload.get("end_line", 0)
            self.line_counts[key] = max(self.line_counts.get(key, 0), lines)
            vec = rec.vector or {}
            vectors.append(vec[DENSE])
            sparse = vec.get(SPARSE)
            if sparse is not None:
                for term, weight in zip(sparse.indices, sparse.values):
                    postings[term].append((i, weight))
            for key in self.keywords:
                for value in rec.payload.get(key) or []:
                    self.keywords[key][value].append(i)
            self.payloads.append(rec.payload)
        self.ids = ids
        self.repos = np.array(repos, dtype=object)
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.matrix = matrix / np.where(norms == 0, 1, norms)
        self.postings = {t: (np.array([i for i, _ in p], dtype=np.int64), np.array([w for _, w in p], dtype=np.float32)) for t, p in postings.items()}

    def __len__(self) -> int:
        return len(self.ids)

    def _mask(self, repo_ids: Sequence[str]) -> np.ndarray | None:
        return np.isin(self.repos, list(repo_ids)) if repo_ids else None

    def _top(self, scores: np.ndarray, n: int, mask: np.ndarray | None, candidates: np.ndarray | None = None) -> list[str]:
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        if candidates is not None:
            keep = np.full(scores.shape, -np.inf, dtype=np.float32)
            keep[candidates] = scores[candidates]
            scores = keep
        n = min(n, int(np.isfinite(scores).sum()))
        if n <= 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [self.ids[i] for i in top]

    def dense(self, vector: np.ndarray, n: int, repo_ids: Sequence[str] = ()) -> list[str]:
        return self.dense_many([vector], n, repo_ids)[0]

    def dense_many(self, vectors: Sequence[np.ndarray], n: int, repo_ids: Sequence[str] = ()) -> list[list[str]]:
        """Per vector, the `n` nearest ids: one matrix product for all of them, so the matrix is read from memory
        once per batch instead of once per query (it is the cost: ~16 MB for 10k MiniLM chunks)."""
        q = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        q = q / np.where(norms == 0, 1.0, norms)
        scores = self.matrix @ q.T
        mask = self._mask(repo_ids)
        return [self._top(np.ascontiguousarray(scores[:, j]), n, mask) for j in range(q.shape[0])]

    def sparse(self, indices: Sequence[int], values: Sequence[float], n: int, repo_ids: Sequence[str] = ()) -> list[str]:
        """Qdrant's IDF-modified sparse dot product: Σ idf(t)·q(t)·d(t), idf = ln(1 + (N − df + 0.5)/(df + 0.5))."""
        total = len(self.ids)
        scores = np.zeros(total, dtype=np.float32)
        touched: list[np.ndarray] = []
        for term, q in zip(indices, values):
            post = self.postings.get(term)
            if post is None:
                continue
            docs, weights = post
            idf = math.log(1 + (total - len(docs) + 0.5) / (len(docs) + 0.5))
            np.add.at(scores, docs, idf * q * weights)
            touched.append(docs)
        if not touched:
            return []
        return self._top(scores, n, self._mask(repo_ids), np.unique(np.concatenate(touched)))

    def matching(self, key: str, values: Iterable[str], repo_ids: Sequence[str] = ()) -> list[tuple[str, dict]]:
        """Points whose keyword list `key` (`def_names`, `path_tails`) holds any of `values`, with their payload."""
        table = self.keywords[key]
        hits = sorted({i for v in values for i in table.get(v, ())})
        allowed = set(repo_ids)
        return [(self.ids[i], self.payloads[i]) for i in hits if not allowed or self.repos[i] in allowed]


class MemoryReplica:
    """A `VectorStore` whose queries are answered from an in-memory copy of the live version.

    Versions, the alias and writes go to the primary store (the source of truth); the copy is loaded on the
    first query and reloaded whenever the alias has moved to another version — a read replica that follows
    the primary's blue/green switch. Chosen by configuration (`search.memory_index`, embedded Qdrant) for
    long-lived processes: the Serve retriever and evaluation runs; a one-shot `codesense search` never pays
    for the load.
    """

    def __init__(self, primary: VectorStore) -> None:
        self.primary = primary
        self.alias = primary.alias
        self.embedded = primary.embedded
        self._copy: MemoryIndex | None = None
        self._by_id: dict[str, int] = {}

    def __getattr__(self, name: str):
        # Versions, the alias, manifests and writes: the primary's (the replica only answers queries).
        return getattr(self.primary, name)

    def snapshot(self) -> MemoryIndex | None:
        """The copy of the live version, (re)loaded when the alias points somewhere new; None with no index."""
        live = self.primary.live_collection()
        if live is None:
            return None
        if self._copy is None or self._copy.collection != live:
            self._copy = MemoryIndex(self.primary, live)
            self._by_id = {pid: i for i, pid in enumerate(self._copy.ids)}
        return self._copy

    def dense_search(self, vectors, n: int, repo_ids: Sequence[str] = ()) -> list[list[str]]:
        mem = self.snapshot()
        return mem.dense_many(list(vectors), n, repo_ids) if mem and len(vectors) else [[] for _ in vectors]

    def sparse_search(self, indices, values, n: int, repo_ids: Sequence[str] = ()) -> list[str]:
        mem = self.snapshot()
        return mem.sparse(indices, values, n, repo_ids) if mem and indices else []

    def keyword_matches(self, key: str, values, repo_ids: Sequence[str], fields, limit: int) -> list[tuple[str, dict]]:
        mem = self.snapshot()
        if mem is None:
            return []
        return [(pid, {f: p.get(f) for f in fields if f in p}) for pid, p in mem.matching(key, values, repo_ids)[:limit]]

    def payloads(self, ids) -> dict[str, dict]:
        mem = self.snapshot()
        if mem is None:
            return {}
        return {pid: mem.payloads[self._by_id[pid]] for pid in ids if pid in self._by_id}

    def line_count(self, repo_id: str, path: str) -> int | None:
        mem = self.snapshot()
        return mem.line_counts.get((repo_id, path)) if mem else None

    def manifests(self, collection: str) -> dict[str, dict[str, FileEntry]]:
        return self.primary.manifests(collection)
