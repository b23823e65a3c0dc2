"""The query-embedding LRU cache: same vectors as the model, bounded, least recently used evicted first."""

from __future__ import annotations

import numpy as np

from codesense_ray.index.embedding import QueryEmbeddingCache


class CountingEmbedder:
    """A deterministic stand-in model: a text's vector derives from its hash; every text embedded is recorded."""

    name = "counting"
    dimension = 8
    max_seq_length = 64

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed_queries(self, texts):
        self.embedded.extend(texts)
        return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(self.dimension).astype(np.float32) for t in texts])

    def embed_documents(self, texts):
        return self.embed_queries(texts)


def test_hits_return_the_models_vectors_and_skip_the_model():
    """A repeated query returns exactly the model's vector without a second model call."""
    model = CountingEmbedder()
    cache = QueryEmbeddingCache(model, size=4)
    first = cache.embed_queries(["a", "b"])
    again = cache.embed_queries(["b", "a"])
    assert np.array_equal(again, first[::-1]) and np.array_equal(first, model.embed_queries(["a", "b"]))
    assert model.embedded[:2] == ["a", "b"] and len(model.embedded) == 4  # 2 misses, then only the reference call


def test_only_misses_reach_the_model_once_each():
    """In a mixed call, only the unseen texts are embedded, duplicates once, and rows keep the callers' order."""
    model = CountingEmbedder()
    cache = QueryEmbeddingCache(model, size=8)
    cache.embed_queries(["a"])
    rows = cache.embed_queries(["c", "a", "c", "d"])
    assert model.embedded == ["a", "c", "d"]
    assert np.array_equal(rows[0], rows[2]) and rows.shape == (4, 8)


def test_bounded_and_least_recently_used_evicted():
    """The cache never holds more than `size` queries; a recently used one survives, the oldest goes."""
    model = CountingEmbedder()
    cache = QueryEmbeddingCache(model, size=2)
    cache.embed_queries(["a", "b"])
    cache.embed_queries(["a"])  # a is now the most recent
    cache.embed_queries(["c"])  # evicts b
    assert len(cache) == 2
    model.embedded.clear()
    cache.embed_queries(["a", "b"])
    assert model.embedded == ["b"]


def test_cached_vectors_cannot_be_changed_by_a_caller():
    """A caller editing the returned rows in place cannot corrupt what later hits receive."""
    cache = QueryEmbeddingCache(CountingEmbedder(), size=2)
    rows = cache.embed_queries(["a"])
    rows[0][:] = 0
    assert np.any(cache.embed_queries(["a"])[0] != 0)


def test_documents_bypass_the_cache():
    """Document embedding (indexing) never fills the query cache."""
    cache = QueryEmbeddingCache(CountingEmbedder(), size=2)
    cache.embed_documents(["doc"])
    assert len(cache) == 0 and cache.embed_queries([]).shape == (0, 8)
