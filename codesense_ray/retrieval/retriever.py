"""Hybrid retrieval: dense + code-aware sparse + exact definition matches, fused with RRF.

Each signal catches what the others miss: embeddings match meaning ("where do we check permissions"),
the sparse vector matches rare identifiers and words, and the definitions table answers "where is
`verify_token` defined" exactly. Runs in-process (no Ray): `codesense search` must stay quick.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np

from codesense_ray.config import SearchConfig
from codesense_ray.index.embedding import Embedder
from codesense_ray.errors import CodesenseError, IndexNotBuilt, RepositoryNotFound
from codesense_ray.retrieval.file_ranking import aggregate_files
from codesense_ray.retrieval.fusion import fuse_rankings
from codesense_ray.index.lexical import path_suffixes, query_identifiers, query_paths, query_sparse_vector, split_passages, traceback_functions
from codesense_ray.sources.repositories import line_url
from codesense_ray.store.base import VectorStore

# How many definition matches to consider before ranking them (exact lookups are cheap).
SYMBOL_SCAN_LIMIT = 256
# More chunks than this sharing the best definition match: the symbol signal abstains.
SYMBOL_MAX_MATCHES = 12


@dataclass
class SearchHit:
    """One ranked chunk with its link."""

    id: str
    repo: str
    path: str
    start_line: int
    end_line: int
    url: str
    score: float
    symbol: str | None = None
    kind: str = "code"
    language: str = "text"
    text: str = field(default="", repr=False)
    header: str = field(default="", repr=False)
    ref: str | None = None
    signals: dict[str, int] = field(default_factory=dict)

    def to_dict(self, *, with_text: bool = False) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in HIT_FIELDS if with_text or f not in ("text", "header")}  # no deep copy
        d["score"] = round(self.score, 6)
        d["signals"] = dict(self.signals)
        return d


HIT_FIELDS = tuple(f.name for f in fields(SearchHit))


@dataclass
class FileHit:
    """A file ranked for a query, with the chunks that put it there (best first)."""

    repo: str
    path: str
    score: float
    url: str
    chunks: list[SearchHit] = field(default_factory=list, repr=False)


def files_from_hits(hits: Sequence[SearchHit], k: int, query: str = "") -> list[FileHit]:
    """Chunk hits (best first) aggregated to their files, ranked by `file_ranking.aggregate_files`: the best
    chunk's score times a role prior (test and docs files rank below source unless the query asks for them)."""
    files: dict[tuple[str, str], FileHit] = {}
    for h in hits:
        key = (h.repo, h.path)
        if key not in files:
            files[key] = FileHit(repo=h.repo, path=h.path, score=h.score, url=h.url, chunks=[])
        files[key].chunks.append(h)
    ranked = aggregate_files([(h.id, h.score) for h in hits], {h.id: (h.repo, h.path) for h in hits}, query=query)
    out = []
    for key, score in ranked[:k]:
        files[key].score = score
        out.append(files[key])
    return out


class Retriever:
    """Searches the live index behind the alias. Backends come in through the constructor."""

    def __init__(self, store: VectorStore, embedder: Embedder | None, cfg: SearchConfig | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.cfg = cfg or SearchConfig()
        self._metas: tuple[str, dict[str, dict]] | None = None

    def live(self) -> str:
        live = self.store.live_collection()
        if live is None:
            raise IndexNotBuilt()
        return live

    def repositories(self) -> dict[str, dict]:
        live = self.live()
        if self._metas is None or self._metas[0] != live:
            self._metas = (live, self.store.repo_metas(live))
        return self._metas[1]

    def passages_to_embed(self, query: str) -> list[str]:
        """The texts the dense signal embeds for `query` (none when it is off). A caller that batches query
        embeddings across requests (the Serve retriever) embeds these itself and passes `query_vectors`."""
        if self.embedder is None or self.cfg.weights.get("dense", 1.0) <= 0:
            return []
        return split_passages(query, self.cfg.passage_chars)

    def search_batch(
        self, requests: Sequence[tuple[str, int | None, Sequence[str]]], timings: dict[str, float] | None = None
    ) -> list[list[SearchHit] | CodesenseError]:
        """Several searches at once (the Serve retriever's batch): one model call embeds every query's passages
        and one dense search per repository filter covers them all; each result is what `search` returns for
        that query alone, or its domain error. `timings` receives the batch's `embed_query` seconds."""
        passages = [self.passages_to_embed(query) for query, _, _ in requests]
        flat = [p for ps in passages for p in ps]
        started = time.perf_counter()
        vectors = self.embedder.embed_queries(flat) if flat else np.zeros((0, 0), dtype=np.float32)
        if timings is not None and flat:
            timings["embed_query"] = time.perf_counter() - started
        bounds = np.cumsum([0] + [len(ps) for ps in passages])
        own = [vectors[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        dense: list[list[list[str]] | None] = [None] * len(requests)
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, (_, _, repo_ids) in enumerate(requests):
            if passages[i]:
                groups.setdefault(tuple(repo_ids), []).append(i)
        for repo_ids, members in groups.items():
            try:
                lists = self.store.dense_search(np.concatenate([own[i] for i in members]), self.cfg.candidates, list(repo_ids))
            except CodesenseError:
                continue  # each query then searches alone and reports the error itself
            row = 0
            for i in members:
                dense[i], row = lists[row : row + len(own[i])], row + len(own[i])
        out: list[list[SearchHit] | CodesenseError] = []
        for (query, k, repo_ids), vecs, lists in zip(requests, own, dense):
            try:
                out.append(self.search(query, k, repo_ids, query_vectors=vecs if len(vecs) else None, dense_lists=lists))
            except CodesenseError as err:
                out.append(err)
        return out

    def search(
        self,
        query: str,
        k: int | None = None,
        repo_ids: Sequence[str] = (),
        *,
        query_vectors: np.ndarray | None = None,
        dense_lists: list[list[str]] | None = None,
    ) -> list[SearchHit]:
        """Ranked chunk hits; `query_vectors`: the embeddings of `passages_to_embed(query)`, when already computed;
        `dense_lists`: their nearest chunks, when already searched (`search_batch`)."""
        k = k or self.cfg.k
        metas = self.repositories()
        unknown = [r for r in repo_ids if r not in metas]
        if unknown:
            raise RepositoryNotFound(f"unknown repository '{unknown[0]}' (indexed: {', '.join(sorted(metas)) or 'none'})")
        rankings = self.rank_signals(query, repo_ids, query_vectors=query_vectors, dense_lists=dense_lists)
        fused = fuse_rankings(rankings, self.cfg.weights, self.cfg.rrf_k)[:k]
        ranks = {sig: {pid: i + 1 for i, pid in enumerate(ids)} for sig, ids in rankings.items()}
        payloads = self.store.payloads([pid for pid, _ in fused])
        hits = []
        for pid, score in fused:
            p = payloads.get(pid)
            if p is None:
                continue
            meta = metas.get(p["repo_id"], {})
            hits.append(
                SearchHit(
                    id=pid,
                    repo=p["repo_id"],
                    path=p["path"],
                    start_line=p["start_line"],
                    end_line=p["end_line"],
                    url=self.link(meta, p["path"], p["start_line"], p["end_line"]),
                    score=score,
                    symbol=p.get("symbol"),
                    kind=p.get("kind", "code"),
                    language=p.get("language", "text"),
                    text=p.get("text", ""),
                    header=p.get("header", ""),
                    ref=meta.get("ref"),
                    signals={sig: r[pid] for sig, r in ranks.items() if pid in r},
                )
            )
        return hits

    @staticmethod
    def link(meta: dict, path: str, start: int, end: int) -> str:
        """A link pinned to the indexed ref (commit SHA when known) of the chunk's repository."""
        root = meta.get("root")
        return line_url(meta.get("web_url"), meta.get("host_kind") or "generic", meta.get("ref"), path, start, end, local_root=root)

    def rank_signals(
        self, query: str, repo_ids: Sequence[str] = (), *, query_vectors: np.ndarray | None = None, dense_lists: list[list[str]] | None = None
    ) -> dict[str, list[str]]:
        """Ranked point ids from each signal, best first."""
        n = self.cfg.candidates
        rankings: dict[str, list[str]] = {}
        weights = self.cfg.weights
        passages = self.passages_to_embed(query)
        if passages and dense_lists is not None:
            rankings["dense"] = self.fuse_passages(dense_lists, n)
        elif passages:
            vectors = query_vectors if query_vectors is not None else self.embedder.embed_queries(passages)
            rankings["dense"] = self.dense_matches(vectors, repo_ids, n)
        if weights.get("sparse", 1.0) > 0:
            idx, val = query_sparse_vector(query)
            rankings["sparse"] = self.store.sparse_search(idx, val, n, repo_ids)
        if weights.get("symbol", 1.0) > 0:
            rankings["symbol"] = self.symbol_matches(query, repo_ids)[:n]
        if weights.get("path", 1.0) > 0:
            rankings["path"] = self.path_matches(query, repo_ids)[:n]
        return {sig: ids for sig, ids in rankings.items() if ids}

    def dense_matches(self, vectors: np.ndarray, repo_ids: Sequence[str], n: int) -> list[str]:
        """Nearest chunks to the query's passage vectors (a long query is embedded passage by passage); the lists fused."""
        return self.fuse_passages(self.store.dense_search(vectors, n, repo_ids), n)

    def fuse_passages(self, lists: list[list[str]], n: int) -> list[str]:
        """One dense ranking from the nearest-chunk lists of a query's passages (RRF when there are several)."""
        if len(lists) == 1:
            return lists[0]
        return [pid for pid, _ in fuse_rankings({str(i): ids for i, ids in enumerate(lists)}, k=self.cfg.rrf_k)][:n]

    def path_matches(self, query: str, repo_ids: Sequence[str] = ()) -> list[str]:
        """Chunks of files the query names (a traceback frame, `jwt.py`, `app/auth/jwt.py`), longest match first.

        (Ordering by traceback frame depth and role, `file_ranking.order_path_matches`, measured neutral on the
        bug-report set: see benchmarks/quality.py.)
        """
        wanted: dict[str, int] = {}
        for mentioned in query_paths(query):
            for depth, suffix in enumerate(path_suffixes(mentioned), start=1):
                wanted[suffix] = max(wanted.get(suffix, 0), depth)
        if not wanted:
            return []
        matches = self.store.keyword_matches("path_tails", list(wanted), repo_ids, ["path_tails", "start_line"], SYMBOL_SCAN_LIMIT)
        scored = [(max(wanted.get(t, 0) for t in p.get("path_tails") or []), p.get("start_line", 0), pid) for pid, p in matches]
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [pid for _, _, pid in scored]

    def symbol_matches(self, query: str, repo_ids: Sequence[str] = ()) -> list[str]:
        """Chunks defining a name the query mentions, most specific first.

        A match on a code-like name (`verify_token`, `PaymentAuthorizer.authorize`) outranks a match on
        a plain word ("authorize"); the function where a traceback was raised counts most; chunks defining
        several mentioned names come first.
        """
        names = query_identifiers(query)
        frames = traceback_functions(query)
        if not names and not frames:
            return []
        lowered = query.lower()
        weight = {n: (3.0 if any(c in n for c in "._") else 1.0) + (1.0 if f"`{n}" in lowered else 0.0) for n in names}
        for i, fn in enumerate(frames):
            weight[fn.lower()] = weight.get(fn.lower(), 0.0) + 4.0 / (1 + i)
        records = self.store.keyword_matches("def_names", list(weight), repo_ids, ["def_names", "symbol"], SYMBOL_SCAN_LIMIT)
        scored = []
        for pid, payload in records:
            defined = set(payload.get("def_names") or [])
            symbol = (payload.get("symbol") or "").lower()
            score = sum(w for n, w in weight.items() if n in defined)
            # The chunk whose main symbol is the name beats chunks that merely contain a nested definition.
            score += sum(0.5 * w for n, w in weight.items() if symbol == n or symbol.endswith("." + n))
            scored.append((score, pid))
        scored.sort(key=lambda t: -t[0])
        # Only discriminative matches rank: a name defined in dozens of chunks says little about which one.
        top = [pid for score, pid in scored if score >= scored[0][0] * 0.5] if scored else []
        return top if len(top) <= SYMBOL_MAX_MATCHES else []

    def rank_files(self, query: str, k: int = 10, repo_ids: Sequence[str] = (), chunks: int | None = None) -> list[FileHit]:
        """Files ranked for `query`: chunk hits aggregated to their files (`file_ranking.aggregate_files`:
        tests and docs down-weighted unless the question asks about them; by default the best chunk decides)."""
        hits = self.search(query, k=chunks or max(self.cfg.candidates, k * 5), repo_ids=repo_ids)
        return files_from_hits(hits, k, query)

    def file_line_count(self, repo: str, path: str) -> int | None:
        """Lines of an indexed file (None when the path is not indexed for that repository)."""
        return self.store.line_count(repo, path)
