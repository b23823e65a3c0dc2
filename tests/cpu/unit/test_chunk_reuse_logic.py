"""Chunk-level reuse keys and bookkeeping (pure logic, no model, no store)."""

from __future__ import annotations

import numpy as np

from codesense_ray.index.chunk_reuse import count_gone, embed_hash, embed_or_reuse, stored_embed_hash
from codesense_ray.index.schema import Chunk


def test_stored_key_matches_what_was_embedded():
    """The key rebuilt from a stored payload equals the key of the chunk's embed_text, with and without a header."""
    with_header = Chunk("a.py", 1, 2, "python", "def f():\n    return 1", header="# a.py\ndef f()")
    bare = Chunk("a.py", 1, 2, "python", "x = 1")
    for chunk in (with_header, bare):
        assert stored_embed_hash({"header": chunk.header, "text": chunk.text}) == embed_hash(chunk.embed_text)
    assert embed_hash(with_header.embed_text) != embed_hash(with_header.text)


def test_only_unknown_texts_reach_the_model():
    """Known keys keep their stored vector in input order; the model sees only the other texts, in one call."""
    seen: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        seen.append(texts)
        return np.full((len(texts), 3), 7.0, dtype=np.float32)

    reuse = {embed_hash("old"): [1.0, 2.0, 3.0]}
    vectors, hashes, reused = embed_or_reuse(["new", "old", "newer"], reuse, embed)
    assert seen == [["new", "newer"]]
    assert reused == [False, True, False]
    assert hashes[1] == embed_hash("old")
    np.testing.assert_array_equal(vectors, [[7, 7, 7], [1, 2, 3], [7, 7, 7]])


def test_all_reused_never_calls_the_model():
    """A batch of only known chunks is answered from the stored vectors without calling the model."""

    def embed(texts):
        raise AssertionError("model called")

    vectors, _, reused = embed_or_reuse(["a", "a"], {embed_hash("a"): [0.5, 0.5]}, embed)
    assert reused == [True, True] and vectors.shape == (2, 2)


def test_count_gone_is_per_file_multiset():
    """Old chunks count as deleted when their text is gone from that file's new chunks (duplicates counted)."""
    old = {("r", "a.py"): ["h1", "h2", "h2"], ("r", "b.py"): ["h3"]}
    new = {("r", "a.py"): ["h1", "h2", "h9"], ("r", "b.py"): ["h3"]}
    assert count_gone(old, new) == 1
    assert count_gone(old, {}) == 4
