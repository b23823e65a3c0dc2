"""`search.passage_chars`: how a long query is cut into passages for the dense signal, and how their rankings fuse."""

from __future__ import annotations

from codesense_ray.config import SearchConfig
from codesense_ray.retrieval.retriever import Retriever

REPORT = "\n\n".join(["The CLI crashes when the env is unset. " * 4, "Traceback (most recent call last):\n" + "  File \"x.py\", line 3\n" * 12])


class RecordingEmbedder:
    """Records the passages it is asked to embed; each passage's 'vector' is its index."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed_queries(self, texts):
        self.seen = list(texts)
        return [[float(i)] for i in range(len(texts))]


class PassageStore:
    """Passage 0 ranks chunk a first, passage 1 ranks chunk b first."""

    def dense_search(self, vectors, n, repo_ids=()):
        return [["a", "c"] if v[0] == 0 else ["b", "c"] for v in vectors]


def test_passage_chars_decides_how_a_long_query_is_cut():
    """A report under `passage_chars` is embedded whole; above it, by paragraphs, and the rankings are fused (RRF)."""
    embedder = RecordingEmbedder()
    whole = Retriever(PassageStore(), embedder, SearchConfig(passage_chars=len(REPORT) + 1))
    assert whole.dense_matches(embedder.embed_queries(whole.passages_to_embed(REPORT)), [], 10) == ["a", "c"]
    assert embedder.seen == [REPORT]
    cut = Retriever(PassageStore(), embedder, SearchConfig(passage_chars=300))
    ranked = cut.dense_matches(embedder.embed_queries(cut.passages_to_embed(REPORT)), [], 10)
    assert len(embedder.seen) == 2 and all(len(p) <= 300 for p in embedder.seen)
    assert ranked[0] == "c" and set(ranked) == {"a", "b", "c"}  # c is second in both passages' lists: fused, it wins
